/**
 * The processor: a Kafka consumer group on `vcam.events` that turns each fetched chunk of a
 * partition into exact rows in ClickHouse.
 *
 * Exactly-once effect (the argument in full is in docs/architecture.md):
 *  1. Before writing a chunk, its offset range is recorded in `vcam.chunks`.
 *  2. The chunk's rows are a pure function of its messages and of what the partition counted
 *     before its first offset (hot set rebuilt from ClickHouse, cold lookups restricted to
 *     earlier offsets).
 *  3. Every insert carries a token derived from the range, so ClickHouse keeps one copy.
 *  4. On assignment the last recorded chunk is redone exactly (same range, same rows, same
 *     tokens) unless Kafka's committed offset shows it was finished; then processing goes on.
 * A crash anywhere therefore leaves each table as if the chunk had been written once.
 */
import { EventEmitter } from 'node:events';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { createKafka, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { retry } from '../common/retry.js';
import { HotSet } from './dedup.js';
import { GeoTable } from './geo.js';
import { coldCandidates, decodeChunk, processChunk, type ChunkMessage, type ChunkResult, type PipelineOptions } from './pipeline.js';
import { ProcessorStore, type ChunkRange } from './store.js';

export interface ProcessorOptions extends KafkaClientOptions {
  clickhouse: ClickHouseClient;
  group: string;
  topic?: string;
  /** Event-time span of the in-memory dedup tier; older duplicates are found in ClickHouse. */
  hotHorizonMs: number;
  lateAfterMs: number;
  rawRetentionDays: number;
  sessionTimeoutMs: number;
  maxWaitTimeInMs: number;
  geoRefreshMs: number;
}

export interface ProcessorEvents {
  chunk: [c: { partition: number; range: ChunkRange; result: ChunkResult; latenciesMs: number[]; attempts: number; redo: boolean }];
  writeFailed: [err: Error, partition: number, attempt: number, retryInMs: number];
  recovered: [partition: number, next: bigint, redo: ChunkRange | undefined, hotIds: number];
  offsetGap: [partition: number, expected: bigint, got: bigint];
  geoReloaded: [geos: number];
  crashed: [err: Error];
}

interface PartitionState {
  hot: HotSet;
  /** The next offset this processor must count. */
  next: bigint;
  /** A recorded chunk that must be redone exactly before anything else. */
  redo?: ChunkRange;
  buffered: KafkaMessage[];
}

const STALE = new Error('partition no longer assigned');
/** The dedup log keeps two days; rebuilding reads a little less than that. */
const DEDUP_LOG_SAFE_MS = 36 * 3_600_000;

export class Processor extends EventEmitter<ProcessorEvents> {
  readonly topic: string;
  private readonly consumer: Consumer;
  private readonly store: ProcessorStore;
  private readonly geo: GeoTable;
  private readonly partitions = new Map<number, PartitionState>();
  private readonly pipeline: PipelineOptions;
  private geoTimer?: NodeJS.Timeout;
  /** Highest offset seen per partition and the partition's high watermark, for lag. */
  readonly positions = new Map<number, { next: bigint; highWatermark: bigint }>();

  constructor(private readonly o: ProcessorOptions) {
    super();
    this.topic = o.topic ?? TOPICS.events;
    this.store = new ProcessorStore(o.clickhouse, this.topic);
    this.geo = new GeoTable(o.clickhouse);
    this.pipeline = { lateAfterMs: o.lateAfterMs, maxAgeMs: (o.rawRetentionDays - 1) * 86_400_000 };
    this.consumer = createKafka(o).consumer({
      groupId: o.group,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(o.sessionTimeoutMs / 6)),
      maxWaitTimeInMs: o.maxWaitTimeInMs,
      // A consumer that crashed (e.g. a failed rejoin) starts again instead of going quiet.
      retry: { retries: 10, restartOnFailure: async () => true },
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      const mine = new Set(payload.memberAssignment[this.topic] ?? []);
      for (const p of this.partitions.keys()) if (!mine.has(p)) this.partitions.delete(p);
    });
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => this.emit('crashed', payload.error));
  }

  get geoTable(): GeoTable {
    return this.geo;
  }

  get assignedPartitions(): number[] {
    return [...this.partitions.keys()];
  }

  hotIds(): number {
    let n = 0;
    for (const s of this.partitions.values()) n += s.hot.size;
    return n;
  }

  async start(): Promise<void> {
    await this.refreshGeo();
    this.geoTimer = setInterval(() => void this.refreshGeo().catch(() => undefined), this.o.geoRefreshMs);
    this.geoTimer.unref();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (p) => this.onBatch(p) });
  }

  private async refreshGeo(): Promise<void> {
    if (await this.geo.refresh()) this.emit('geoReloaded', this.geo.current.size);
  }

  private async onBatch(b: EachBatchPayload): Promise<void> {
    const { batch } = b;
    const p = batch.partition;
    this.positions.set(p, { next: this.positions.get(p)?.next ?? BigInt(batch.firstOffset() ?? 0), highWatermark: BigInt(batch.highWatermark) });
    if (batch.isEmpty()) return;
    let st = this.partitions.get(p);
    if (!st) {
      st = await this.recover(p, BigInt(batch.firstOffset()!));
      this.partitions.set(p, st);
      if (BigInt(batch.firstOffset()!) > st.next) {
        // The fetch started past what must be redone (Kafka had committed further): go back.
        this.consumer.seek({ topic: this.topic, partition: p, offset: st.next.toString() });
        return;
      }
    }
    let messages = batch.messages.filter((m) => BigInt(m.offset) >= st.next);
    if (messages.length === 0) return;
    const first = BigInt(messages[0]!.offset);
    if (first > st.next && st.buffered.length === 0) {
      // Kafka no longer holds the offsets we need: data loss, loudly, never silently.
      this.emit('offsetGap', p, st.next, first);
      if (st.redo) st.redo = undefined;
      st.next = first;
    }
    let range: ChunkRange;
    if (st.redo) {
      const { end } = st.redo;
      st.buffered.push(...messages.filter((m) => BigInt(m.offset) < end));
      if (BigInt(batch.lastOffset()) < end - 1n) return; // wait for the rest of the chunk to redo
      messages = st.buffered;
      st.buffered = [];
      range = st.redo;
    } else {
      range = { start: st.next, end: BigInt(messages[messages.length - 1]!.offset) + 1n };
    }
    const redo = !!st.redo;
    await this.runChunk(p, st, range, messages, b, redo);
    st.redo = undefined;
    st.next = range.end;
    this.positions.set(p, { next: range.end, highWatermark: BigInt(batch.highWatermark) });
    b.resolveOffset((range.end - 1n).toString());
    await b.commitOffsetsIfNecessary();
  }

  private async recover(p: number, fetchedFrom: bigint): Promise<PartitionState> {
    const hot = new HotSet(this.o.hotHorizonMs);
    const last = await this.store.lastChunk(p);
    // Kafka's committed offset (where this fetch began) at or past the chunk's end proves it finished.
    const redo = last && fetchedFrom < last.end ? last : undefined;
    const next = redo ? redo.start : last ? last.end : fetchedFrom;
    await this.store.rebuildHot(p, next, hot, Date.now() - DEDUP_LOG_SAFE_MS);
    this.emit('recovered', p, next, redo, hot.size);
    return { hot, next, redo, buffered: [] };
  }

  private async runChunk(p: number, st: PartitionState, range: ChunkRange, messages: KafkaMessage[], b: EachBatchPayload, redo: boolean): Promise<void> {
    const chunk: ChunkMessage[] = messages.map((m) => ({ offset: BigInt(m.offset), timestamp: Number(m.timestamp), value: m.value }));
    let attempts = 0;
    const result = await retry(
      async () => {
        attempts++;
        if (!b.isRunning() || b.isStale()) throw STALE;
        await b.heartbeat();
        const decoded = decodeChunk(chunk, this.pipeline);
        const cold = await this.store.coldSeen(p, range.start, coldCandidates(decoded, st.hot));
        const r = processChunk(p, decoded, st.hot, cold, this.geo.current, this.pipeline);
        await this.store.recordChunk(p, range);
        await this.store.writeChunk(p, range, r);
        return r;
      },
      { initialMs: 200, maxMs: 5_000, isRetriable: (err) => err !== STALE, onRetry: (err, attempt, delay) => this.emit('writeFailed', err as Error, p, attempt, delay) },
    );
    for (const e of result.events) st.hot.add(e.event_id, e.ts);
    st.hot.evict();
    const now = Date.now();
    this.emit('chunk', { partition: p, range, result, latenciesMs: result.events.map((e) => now - e.received_at), attempts, redo });
  }

  async stop(): Promise<void> {
    clearInterval(this.geoTimer);
    await this.consumer.disconnect();
  }
}
