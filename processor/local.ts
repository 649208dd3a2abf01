/**
 * The processor in the same process as the bridge (single-node mode, no Kafka): the bridge
 * hands it each publish and sends the PUBACK when `forward` resolves, i.e. after the
 * ClickHouse writes.
 *
 * Exactly-once as in Kafka mode: concurrent publishes are coalesced into one chunk of one
 * partition, numbered on an offset line of its own, and go through the same writer, which
 * records the chunk with its rows before writing them. At start the last recorded chunk is
 * replayed under the same tokens, so a crash half-way leaves nothing half-counted, and its
 * range is never reused.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { Coalescer } from '../common/coalesce.js';
import type { PipelineEvent } from '../common/contract.js';
import { VcamError } from '../common/errors.js';
import type { TaskStreak } from '../common/streak.js';
import { GeoTable } from './geo.js';
import type { HotSet } from './dedup.js';
import type { ChunkMessage, DeadRow } from './pipeline.js';
import { pipelineOptions } from './processor.js';
import { ProcessorStore } from './store.js';
import { ChunkWriter } from './writer.js';

export const LOCAL_TOPIC = 'local';
const PARTITION = 0;

/** What the bridge hands over (structurally the bridge's ForwardBatch). */
export interface HandoffBatch {
  agentId: string;
  events: PipelineEvent[];
  rejects: { reason: string; message: string; value: Buffer }[];
  receivedAt: number;
}

export interface LocalProcessorOptions {
  clickhouse: ClickHouseClient;
  hotHorizonMs: number;
  dedup?: boolean;
  lateAfterMs: number;
  rawRetentionDays: number;
  geoRefreshMs: number;
  maxChunkEvents?: number;
  /** A chunk not full starts no sooner than this after the previous one started (see PROCESSOR_DEFAULTS.chunkIntervalMs). */
  chunkIntervalMs?: number;
  /** Replay the last chunk even past ClickHouse's deduplication window (after an operator checked it). */
  replayBeyondWindow?: boolean;
  /** Where failures of background work are reported (the geo re-check). */
  streaks?: (task: string) => TaskStreak;
}

export class LocalProcessor {
  readonly kind = 'processor';
  readonly writer: ChunkWriter;
  private readonly geo: GeoTable;
  private readonly store: ProcessorStore;
  private hot?: HotSet;
  private next = 0n;
  private readonly chunks: Coalescer<HandoffBatch>;
  private closed = false;

  constructor(private readonly o: LocalProcessorOptions) {
    this.store = new ProcessorStore(o.clickhouse, LOCAL_TOPIC);
    this.geo = new GeoTable(o.clickhouse);
    this.writer = new ChunkWriter(this.store, this.geo, pipelineOptions(o), o.hotHorizonMs, o.dedup);
    this.chunks = new Coalescer(
      (batches) => this.writeChunk(batches),
      (b) => b.events.length,
      o.maxChunkEvents ?? 20_000,
      0,
      o.chunkIntervalMs ?? 0,
    );
  }

  async start(): Promise<void> {
    await this.geo.watch(this.o.geoRefreshMs, undefined, this.o.streaks?.('geo_refresh'));
    // The chunk record does not expire, so the offset line goes on from where it was and no
    // range (nor dedup token) is ever used twice.
    const last = await this.store.lastChunk(PARTITION);
    // Replayed whether or not it was cut short: it is the last write, so its tokens are still
    // remembered and a finished chunk changes nothing. Rows older than their 7 days are gone,
    // but so is any agent still waiting for that chunk's PUBACK.
    const outcome = last && (await this.writer.replay(last, PARTITION, { owned: () => !this.closed, beyondWindow: this.o.replayBeyondWindow }));
    if (outcome?.kind === 'beyond_window') {
      throw new VcamError(
        'UNSAFE_REPLAY',
        `the last chunk (${last!.token}) is ${outcome.distance} deduplication blocks back, past what ClickHouse remembers (${outcome.window}): replaying it could count it twice; see docs/operations.md (Replays past the deduplication window)`,
      );
    }
    this.next = last?.range.end ?? 0n;
    this.hot = await this.writer.rebuild(PARTITION, this.next);
  }

  /** Resolves once the batch is counted in ClickHouse; the bridge then sends the PUBACK. Concurrent calls share a chunk. */
  forward(batch: HandoffBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error('processor closed'));
    return this.chunks.push(batch);
  }

  private async writeChunk(batches: HandoffBatch[]): Promise<void> {
    const start = this.next;
    const now = Date.now();
    const messages: ChunkMessage[] = [];
    const dead: DeadRow[] = [];
    let offset = start;
    for (const b of batches) {
      for (const event of b.events) messages.push({ offset: offset++, timestamp: now, value: null, event });
      for (const r of b.rejects) {
        dead.push({ received_at: b.receivedAt, agent_id: b.agentId, reason: r.reason as DeadRow['reason'], message: r.message, payload: r.value.toString('utf8'), kafka_partition: PARTITION, kafka_offset: String(offset++) });
      }
    }
    const range = { start, end: offset };
    if (range.end === range.start) return;
    // The range is taken before anything is written, so no two recorded chunks ever share one,
    // even when an insert failed on the client's side after succeeding on the server's.
    this.next = range.end;
    await this.writer.write([{ partition: PARTITION, hot: this.hot!, range, messages, dead }], { owned: () => !this.closed });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.geo.stop();
    this.chunks.rejectAll(new Error('processor closed'));
  }
}
