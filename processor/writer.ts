/**
 * Writes one chunk of one partition, the step both processors share (the Kafka consumer and the
 * single-node hand-off): cold lookups, the pure pipeline, the chunk record, the token-carrying
 * inserts, retried until they succeed or the caller says the chunk is no longer its own.
 */
import { EventEmitter } from 'node:events';
import { retry } from '../common/retry.js';
import { HotSet } from './dedup.js';
import type { GeoTable } from './geo.js';
import { coldCandidates, decodeChunk, processChunk, type ChunkMessage, type ChunkResult, type DeadRow, type PipelineOptions } from './pipeline.js';
import type { ChunkRange, ProcessorStore } from './store.js';

export interface WriterEvents {
  chunk: [c: { partition: number; range: ChunkRange; result: ChunkResult; latenciesMs: number[]; attempts: number; redo: boolean; lastMessageAt: number }];
  writeFailed: [err: Error, partition: number, attempt: number, retryInMs: number];
}

export const STALE = new Error('chunk no longer owned');
/** The dedup log keeps two days; rebuilding reads a little less than that. */
const DEDUP_LOG_SAFE_MS = 36 * 3_600_000;

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
    await this.store.rebuildHot(partition, before, hot, Date.now() - DEDUP_LOG_SAFE_MS);
    return hot;
  }

  async write(
    partition: number,
    hot: HotSet,
    range: ChunkRange,
    chunk: ChunkMessage[],
    o: { redo: boolean; owned: () => boolean; heartbeat?: () => Promise<void>; dead?: DeadRow[] },
  ): Promise<ChunkResult> {
    let attempts = 0;
    const result = await retry(
      async () => {
        attempts++;
        if (!o.owned()) throw STALE;
        // A refused heartbeat means the group is rebalancing or has dropped us: not ours any more.
        if (o.heartbeat) await o.heartbeat().catch(() => Promise.reject(STALE));
        const decoded = decodeChunk(chunk, this.pipeline);
        const known = this.dedup ? hot : new HotSet(Infinity);
        const cold = await this.store.coldSeen(partition, range.start, coldCandidates(decoded, known));
        const r = processChunk(partition, decoded, known, cold, this.geo.current, this.pipeline);
        if (o.dead) r.dead.push(...o.dead);
        // Ownership is checked before every statement, not once: a write started outside a kafkajs
        // batch (the linger timer's) is not held back by the rebalance, so it must stop by itself
        // as soon as the partition is no longer ours, leaving at most the statement in flight.
        const stillOwned = () => {
          if (!o.owned()) throw STALE;
        };
        stillOwned();
        await this.store.recordChunk(partition, range);
        await this.store.writeChunk(partition, range, r, stillOwned);
        return r;
      },
      { initialMs: 200, maxMs: 5_000, isRetriable: (err) => err !== STALE, onRetry: (err, attempt, delay) => this.emit('writeFailed', err as Error, partition, attempt, delay) },
    );
    for (const e of result.events) hot.add(e.event_id, e.ts);
    hot.evict();
    const now = Date.now();
    const lastMessageAt = chunk.reduce((m, c) => Math.max(m, c.timestamp), 0);
    this.emit('chunk', { partition, range, result, latenciesMs: result.events.map((e) => now - e.received_at), attempts, redo: o.redo, lastMessageAt });
    return result;
  }
}
