/**
 * Writes one chunk, the step both processors share (the Kafka consumer and the single-node
 * hand-off): cold lookups, the pure pipeline per partition, the chunk record with its rows,
 * the token-carrying inserts, retried until they succeed or the caller says the chunk is no
 * longer its own. A chunk spans all the partitions its processor had due, so its seven
 * statements serve all of them (ClickHouse's cost is per statement far more than per row).
 */
import { EventEmitter } from 'node:events';
import { crashPoint } from '../common/crash.js';
import { retry } from '../common/retry.js';
import { HotSet } from './dedup.js';
import type { GeoTable } from './geo.js';
import { coldCandidates, decodeChunk, hotAnswers, processChunk, type ChunkMessage, type ChunkResult, type DeadRow, type PipelineOptions } from './pipeline.js';
import type { ChunkPart, ChunkRange, ChunkRows, ProcessorStore, RecordedChunk } from './store.js';

export interface WriterEvents {
  chunk: [c: { partition: number; range: ChunkRange; result: ChunkResult; latenciesMs: number[]; attempts: number; lastMessageAt: number }];
  /** A recorded chunk written again from its kept rows (after a crash or a rebalance). */
  replayed: [token: string, rows: number];
  /** partition null: not a partition's request (the processor's start-up, waiting for ClickHouse). */
  writeFailed: [err: Error, partition: number | null, attempt: number, retryInMs: number];
}

/** A partition's share of a chunk to write: its messages and its dedup state before them. */
export interface WritePart extends ChunkPart {
  hot: HotSet;
  messages: ChunkMessage[];
  /** Dead letters found before the pipeline (single-node: refused by the bridge). */
  dead?: DeadRow[];
}

export interface WriteOptions {
  owned: () => boolean;
  heartbeat?: () => Promise<void>;
}

/** What a replay did. `beyond_window`: nothing; ClickHouse may have forgotten the chunk's tokens. */
export type ReplayOutcome = { kind: 'replayed' } | { kind: 'expired' } | { kind: 'beyond_window'; distance: number; window: number };

/**
 * Room kept in the deduplication window for replays, whose re-inserted blocks are not
 * recorded as chunks: a tenth of it (1,000 blocks of 10,000).
 */
const replayMargin = (window: number) => Math.ceil(window / 10);

export const STALE = new Error('chunk no longer owned');
/** How far back a rebuild reads, at most: a partition idle longer leaves its older ids to the cold tier, and the read stays small. */
const REBUILD_READS_MS = 36 * 3_600_000;

export class ChunkWriter extends EventEmitter<WriterEvents> {
  constructor(
    readonly store: ProcessorStore,
    private readonly geo: GeoTable,
    private readonly pipeline: PipelineOptions,
    private readonly hotHorizonMs: number,
    /** Off only to break the pipeline on purpose (`vcam verify --break dedup`): every chunk forgets what came before. */
    private readonly dedup = true,
  ) {
    super();
  }

  /** The hot dedup set as it stood before offset `before` of this partition. */
  async rebuild(partition: number, before: bigint): Promise<HotSet> {
    const hot = new HotSet(this.hotHorizonMs);
    await this.store.rebuildHot(partition, before, hot, Date.now() - REBUILD_READS_MS);
    return hot;
  }

  /** A read a write depends on (a partition's recovery): retried as writes are, while the partition stays ours, else STALE. */
  whileOwned<T>(partition: number, o: WriteOptions, read: () => Promise<T>): Promise<T> {
    return this.retrying(partition, async () => {
      await this.check(o);
      return read();
    });
  }

  /** Writes a new chunk of these parts (sorted by partition, each range starting where its partition's counting goes on). */
  async write(parts: WritePart[], o: WriteOptions): Promise<void> {
    const token = this.store.token(parts);
    let attempts = 0;
    // Computed once: a retry writes the very rows it recorded, whatever changed meanwhile (the geo table).
    let computed: { results: ChunkResult[]; rows: ChunkRows } | undefined;
    await this.retrying(parts[0]!.partition, async () => {
      attempts++;
      await this.check(o);
      computed ??= await this.compute(parts);
      const stillOwned = this.stillOwned(o);
      stillOwned();
      await this.store.recordChunk(token, parts, computed.rows);
      crashPoint('chunk-recorded');
      await this.store.writeRows(token, computed.rows, () => {
        crashPoint('chunk-insert');
        stillOwned();
      });
      crashPoint('chunk-written');
    });
    const now = Date.now();
    parts.forEach((p, i) => {
      const result = computed!.results[i]!;
      for (const e of result.events) p.hot.add(e.event_id, e.ts);
      p.hot.evict();
      const lastMessageAt = p.messages.reduce((m, c) => Math.max(m, c.timestamp), 0);
      this.emit('chunk', { partition: p.partition, range: p.range, result, latenciesMs: result.events.map((e) => now - e.received_at), attempts, lastMessageAt });
    });
  }

  /**
   * Writes a recorded chunk again from its kept rows, under its tokens: what landed before is
   * dropped by ClickHouse, what did not lands now. `expired` when the record kept no rows (they
   * expire after 7 days, and records written before chunks kept rows have none).
   *
   * ClickHouse remembers only the last `non_replicated_deduplication_window` blocks' tokens per
   * table: a replay further back than that would write again what landed. So the distance is
   * measured first (the blocks every chunk recorded since added), and a replay that cannot be
   * shown to fit is not done (`beyond_window`) unless `beyondWindow` says so on purpose.
   */
  async replay(chunk: RecordedChunk, partition: number, o: WriteOptions & { beyondWindow?: boolean }): Promise<ReplayOutcome> {
    const rows = await this.retrying(partition, async () => {
      await this.check(o);
      return this.store.recordedRows(chunk.token);
    });
    if (!rows) return { kind: 'expired' };
    const { distance, window } = await this.retrying(partition, async () => {
      await this.check(o);
      return { distance: await this.store.replayDistance(chunk), window: await this.store.dedupWindow() };
    });
    if (!o.beyondWindow && distance + (chunk.blocks ?? 1) + replayMargin(window) > window) return { kind: 'beyond_window', distance, window };
    await this.retrying(partition, async () => {
      await this.check(o);
      await this.store.writeRows(chunk.token, rows, this.stillOwned(o));
    });
    this.emit('replayed', chunk.token, rows.events.length);
    return { kind: 'replayed' };
  }

  private async compute(parts: WritePart[]): Promise<{ results: ChunkResult[]; rows: ChunkRows }> {
    const decoded = parts.map((p) => decodeChunk(p.messages, this.pipeline));
    const answers = parts.map((p, i) => hotAnswers(decoded[i]!, this.dedup ? p.hot : new HotSet(Infinity)));
    const cold = await this.store.coldSeen(parts.map((p, i) => ({ partition: p.partition, before: p.range.start, events: coldCandidates(decoded[i]!, answers[i]!) })));
    const results = parts.map((p, i) => {
      const r = processChunk(p.partition, decoded[i]!, answers[i]!, cold.get(p.partition)!, this.geo.current, this.pipeline);
      if (p.dead) r.dead.push(...p.dead);
      return r;
    });
    return { results, rows: this.store.rows(results) };
  }

  private async check(o: WriteOptions): Promise<void> {
    if (!o.owned()) throw STALE;
    // A refused heartbeat means the group is rebalancing or has dropped us: not ours any more.
    if (o.heartbeat) await o.heartbeat().catch(() => Promise.reject(STALE));
  }

  /**
   * Ownership is checked before every statement, not once: a write started outside a kafkajs
   * batch (the linger timer's) is not held back by the rebalance, so it must stop by itself as
   * soon as a partition is no longer ours, leaving at most the statement in flight.
   */
  private stillOwned(o: WriteOptions): () => void {
    return () => {
      if (!o.owned()) throw STALE;
    };
  }

  private retrying<T>(partition: number, fn: () => Promise<T>): Promise<T> {
    return retry(fn, { initialMs: 200, maxMs: 5_000, isRetriable: (err) => err !== STALE, onRetry: (err, attempt, delay) => this.emit('writeFailed', err as Error, partition, attempt, delay) });
  }
}
