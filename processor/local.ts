/**
 * The processor in the same process as the bridge (single-node mode, no Kafka): the bridge
 * hands it each publish and sends the PUBACK when `forward` resolves, i.e. after the
 * ClickHouse writes.
 *
 * Exactly-once as in Kafka mode, with `vcam.handoff_log` standing in for the Kafka log:
 * concurrent publishes are coalesced into one chunk, the chunk's input (with its offsets and
 * timestamps) is written to the hand-off log first, then the chunk goes through the same
 * writer as in Kafka mode. At start the last logged chunk is redone under the same tokens, so
 * a crash half-way leaves nothing half-counted, and its range is never reused.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { Coalescer } from '../common/coalesce.js';
import type { PipelineEvent } from '../common/contract.js';
import { GeoTable } from './geo.js';
import type { HotSet } from './dedup.js';
import type { ChunkMessage, DeadRow } from './pipeline.js';
import { pipelineOptions } from './processor.js';
import { ProcessorStore } from './store.js';
import { ChunkWriter } from './writer.js';
import { dt64 } from '../clickhouse/schema.js';

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
}

interface Logged {
  messages: { offset: string; timestamp: number; value: string }[];
  dead: (Omit<DeadRow, 'kafka_offset'> & { kafka_offset: string })[];
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
    this.chunks = new Coalescer((batches) => this.writeChunk(batches), (b) => b.events.length, o.maxChunkEvents ?? 20_000);
  }

  async start(): Promise<void> {
    await this.geo.watch(this.o.geoRefreshMs);
    const [last] = await (
      await this.o.clickhouse.query({ query: 'SELECT toString(chunk_start) AS s, toString(chunk_end) AS e, payload FROM vcam.handoff_log ORDER BY chunk_start DESC LIMIT 1', format: 'JSONEachRow' })
    ).json<{ s: string; e: string; payload: string }>();
    if (!last) {
      // The hand-off log keeps two days; the chunk record does not expire, so the offset line
      // goes on from where it was and no range (nor dedup token) is ever used twice.
      this.next = (await this.store.lastChunk(PARTITION))?.end ?? 0n;
      this.hot = await this.writer.rebuild(PARTITION, this.next);
      return;
    }
    const range = { start: BigInt(last.s), end: BigInt(last.e) };
    this.hot = await this.writer.rebuild(PARTITION, range.start);
    const logged = JSON.parse(last.payload) as Logged;
    await this.writer.write(PARTITION, this.hot, range, toMessages(logged), { redo: true, owned: () => !this.closed, dead: toDead(logged) });
    this.next = range.end;
  }

  /** Resolves once the batch is counted in ClickHouse; the bridge then sends the PUBACK. Concurrent calls share a chunk. */
  forward(batch: HandoffBatch): Promise<void> {
    if (this.closed) return Promise.reject(new Error('processor closed'));
    return this.chunks.push(batch);
  }

  private async writeChunk(batches: HandoffBatch[]): Promise<void> {
    const start = this.next;
    const now = Date.now();
    const logged: Logged = { messages: [], dead: [] };
    let offset = start;
    for (const b of batches) {
      for (const e of b.events) logged.messages.push({ offset: String(offset++), timestamp: now, value: JSON.stringify(e) });
      for (const r of b.rejects) {
        logged.dead.push({ received_at: b.receivedAt, agent_id: b.agentId, reason: r.reason as DeadRow['reason'], message: r.message, payload: r.value.toString('utf8'), kafka_partition: PARTITION, kafka_offset: String(offset++) });
      }
    }
    const range = { start, end: offset };
    if (range.end === range.start) return;
    // The range is taken before anything is written, so no two logged chunks ever share one,
    // even when an insert failed on the client's side after succeeding on the server's.
    this.next = range.end;
    await this.o.clickhouse.insert({
      table: 'vcam.handoff_log',
      values: [{ chunk_start: String(range.start), chunk_end: String(range.end), payload: JSON.stringify(logged), written_at: dt64(now) }],
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `${LOCAL_TOPIC}:${range.start}-${range.end}:handoff` },
    });
    await this.writer.write(PARTITION, this.hot!, range, toMessages(logged), { redo: false, owned: () => !this.closed, dead: toDead(logged) });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.geo.stop();
    this.chunks.rejectAll(new Error('processor closed'));
  }
}

function toMessages(l: Logged): ChunkMessage[] {
  return l.messages.map((m) => ({ offset: BigInt(m.offset), timestamp: m.timestamp, value: Buffer.from(m.value) }));
}

function toDead(l: Logged): DeadRow[] {
  return l.dead.map((d) => ({ ...d }));
}
