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
import type { Consumer, EachBatchPayload } from 'kafkajs';
import { createGroupConsumer, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import type { HotSet } from './dedup.js';
import { GeoTable } from './geo.js';
import type { ChunkMessage, PipelineOptions } from './pipeline.js';
import { ProcessorStore, type ChunkRange } from './store.js';
import { ChunkWriter } from './writer.js';

/**
 * How many linger times a partition that is behind gathers before writing. The Kafka test peer
 * returns one producer batch per partition and fetch (~500 events at 5,000/s), so a processor
 * behind wrote a chunk per fetch, ~8 statements for 500 events, and never caught up.
 */
const CATCH_UP_LINGER = 5;

export interface ProcessorOptions extends KafkaClientOptions {
  clickhouse: ClickHouseClient;
  group: string;
  topic?: string;
  /** Event-time span of the in-memory dedup tier; older duplicates are found in ClickHouse. */
  hotHorizonMs: number;
  /** Default on; see ChunkWriter. */
  dedup?: boolean;
  lateAfterMs: number;
  rawRetentionDays: number;
  sessionTimeoutMs: number;
  maxWaitTimeInMs: number;
  geoRefreshMs: number;
  /** A chunk is written when it holds this many messages… */
  maxChunkEvents: number;
  /** …or when its first message has waited this long. */
  lingerMs: number;
}

/** Chunk events come from `processor.writer` (WriterEvents); these are the consumer's own. */
export interface ProcessorEvents {
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
  /** Kafka no longer held part of the chunk being redone (see onBatch). */
  redoLostMessages?: boolean;
  buffered: ChunkMessage[];
  bufferedSince: number;
  /** Chunks of a partition are written one after another. */
  lock: Promise<void>;
}

export function pipelineOptions(o: { lateAfterMs: number; rawRetentionDays: number }): PipelineOptions {
  return { lateAfterMs: o.lateAfterMs, maxAgeMs: (o.rawRetentionDays - 1) * 86_400_000 };
}

export class Processor extends EventEmitter<ProcessorEvents> {
  readonly topic: string;
  private consumer: Consumer;
  private stopping = false;
  private readonly store: ProcessorStore;
  private readonly geo: GeoTable;
  private readonly partitions = new Map<number, PartitionState>();
  readonly writer: ChunkWriter;
  private lingerTimer?: NodeJS.Timeout;
  private assigned: number[] = [];
  /** Next offset to count per partition and the partition's high watermark, for lag. */
  private readonly positions = new Map<number, { next: bigint; highWatermark: bigint }>();

  constructor(private readonly o: ProcessorOptions) {
    super();
    this.topic = o.topic ?? TOPICS.events;
    this.store = new ProcessorStore(o.clickhouse, this.topic);
    this.geo = new GeoTable(o.clickhouse);
    this.writer = new ChunkWriter(this.store, this.geo, pipelineOptions(o), o.hotHorizonMs, o.dedup);
    this.consumer = this.createConsumer();
  }

  /** Events waiting per partition: high watermark minus the next offset to count. */
  lag(): Map<number, number> {
    return new Map([...this.positions].map(([p, pos]) => [p, Number(pos.highWatermark - pos.next)]));
  }

  /** Partitions the group gave this member at its last join. */
  get assignedPartitions(): number[] {
    return this.assigned;
  }

  hotIds(): number {
    let n = 0;
    for (const s of this.partitions.values()) n += s.hot.size;
    return n;
  }

  private createConsumer(): Consumer {
    const consumer = createGroupConsumer(this.o, { groupId: this.o.group, sessionTimeoutMs: this.o.sessionTimeoutMs, maxWaitTimeInMs: this.o.maxWaitTimeInMs });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const mine = new Set(payload.memberAssignment[this.topic] ?? []);
      this.assigned = [...mine].sort((a, b) => a - b);
      for (const p of this.partitions.keys()) if (!mine.has(p)) this.partitions.delete(p);
      for (const p of this.positions.keys()) if (!mine.has(p)) this.positions.delete(p);
    });
    // From the moment a rebalance starts, no partition is ours to write until it is assigned
    // again (and its state rebuilt): a chunk being retried stops instead of racing the new owner.
    consumer.on(consumer.events.REBALANCING, () => this.partitions.clear());
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      this.emit('crashed', payload.error);
      // kafkajs restarts only after retriable errors; after any other (e.g. a rejected
      // SyncGroup) it stays down. A processor that silently stops consuming is worse than
      // one that starts over, so start a fresh consumer; partition state is rebuilt on assignment.
      if (!payload.restart && !this.stopping) setTimeout(() => void this.restartConsumer(), 1_000);
    });
    return consumer;
  }

  private async restartConsumer(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
    this.partitions.clear();
    this.positions.clear();
    this.assigned = [];
    if (this.stopping) return;
    this.consumer = this.createConsumer();
    await this.runConsumer().catch((err) => this.emit('crashed', err as Error));
  }

  private async runConsumer(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (p) => this.onBatch(p) });
  }

  async start(): Promise<void> {
    await this.geo.watch(this.o.geoRefreshMs, (geos) => this.emit('geoReloaded', geos));
    await this.runConsumer();
    // A partition that goes quiet still gets its last chunk written within the linger time.
    this.lingerTimer = setInterval(() => {
      for (const [p, st] of this.partitions) if (this.due(p, st)) void this.flush(p, st).catch(() => undefined);
    }, Math.max(10, this.o.lingerMs / 2));
    this.lingerTimer.unref();
  }

  private async onBatch(b: EachBatchPayload): Promise<void> {
    const { batch } = b;
    const p = batch.partition;
    this.positions.set(p, { next: this.partitions.get(p)?.next ?? BigInt(batch.firstOffset() ?? 0), highWatermark: BigInt(batch.highWatermark) });
    if (batch.isEmpty()) return;
    let st = this.partitions.get(p);
    if (!st) {
      st = await this.recover(p, BigInt(batch.firstOffset()!));
      this.partitions.set(p, st);
      if (BigInt(batch.firstOffset()!) !== st.next) {
        // Fetch exactly from where counting must go on (or the chunk to redo begins).
        this.consumer.seek({ topic: this.topic, partition: p, offset: st.next.toString() });
        return;
      }
    }
    const pending = st.buffered.length ? st.buffered[st.buffered.length - 1]!.offset + 1n : st.next;
    const fresh = batch.messages.filter((m) => BigInt(m.offset) >= pending);
    if (fresh.length > 0) {
      const first = BigInt(fresh[0]!.offset);
      if (first > pending) {
        // Kafka no longer holds the offsets we need: data loss, loudly, never silently. What is
        // buffered stays, and the chunk's range spans the hole. A chunk being redone keeps its
        // range, so the inserts that landed before are still dropped by their tokens; after it,
        // the dedup state is read back, for the events of the lost part that did land.
        this.emit('offsetGap', p, pending, first);
        if (st.redo) st.redoLostMessages = true;
      }
      if (st.buffered.length === 0) st.bufferedSince = Date.now();
      for (const m of fresh) st.buffered.push({ offset: BigInt(m.offset), timestamp: Number(m.timestamp), value: m.value });
    }
    // Fetching moves on; what counts as done is only ever our own commit after a chunk's writes.
    b.resolveOffset(batch.lastOffset());
    if (this.due(p, st)) await this.flush(p, st, () => b.heartbeat());
  }

  /**
   * A chunk is due when the redo range is complete, the buffer is full, or it has waited its
   * linger time; a partition that is behind waits longer (CATCH_UP_LINGER): its next fetch is
   * already there, and one large chunk costs the same eight ClickHouse statements as a small one.
   */
  private due(p: number, st: PartitionState): boolean {
    if (st.buffered.length === 0) return false;
    const last = st.buffered[st.buffered.length - 1]!.offset;
    if (st.redo) return last >= st.redo.end - 1n;
    if (st.buffered.length >= this.o.maxChunkEvents) return true;
    const behind = (this.positions.get(p)?.highWatermark ?? 0n) > last + 1n;
    return Date.now() - st.bufferedSince >= (behind ? this.o.lingerMs * CATCH_UP_LINGER : this.o.lingerMs);
  }

  /** Writes due chunks of one partition, one at a time (calls from fetches and the linger timer queue up). */
  private flush(p: number, st: PartitionState, heartbeat?: () => Promise<void>): Promise<void> {
    const run = async () => {
      while (this.due(p, st) && this.partitions.get(p) === st) {
        const end = st.redo ? st.redo.end : st.buffered[st.buffered.length - 1]!.offset + 1n;
        const take = st.buffered.filter((m) => m.offset < end);
        const range = st.redo ?? { start: st.next, end };
        await this.runChunk(p, st, range, take, !!st.redo, heartbeat);
        if (this.partitions.get(p) !== st) return; // revoked while writing: the next owner commits
        if (st.redoLostMessages) {
          // Before the state moves on: if this read fails, the chunk is redone (its tokens drop it) and read again.
          st.hot = await this.writer.rebuild(p, range.end);
          st.redoLostMessages = false;
        }
        st.buffered.splice(0, take.length);
        st.bufferedSince = Date.now();
        st.redo = undefined;
        st.next = range.end;
        this.positions.set(p, { next: range.end, highWatermark: this.positions.get(p)?.highWatermark ?? range.end });
        // Kafka's committed offset tells the partition's next owner that this chunk is finished.
        await this.consumer.commitOffsets([{ topic: this.topic, partition: p, offset: range.end.toString() }]);
      }
    };
    st.lock = st.lock.then(run, run);
    return st.lock;
  }

  private async recover(p: number, fetchedFrom: bigint): Promise<PartitionState> {
    try {
      const last = await this.store.lastChunk(p);
      // Kafka's committed offset (where this fetch began) at or past the chunk's end proves it finished.
      const redo = last && fetchedFrom < last.end ? last : undefined;
      const next = redo ? redo.start : last ? last.end : fetchedFrom;
      const hot = await this.writer.rebuild(p, next);
      this.emit('recovered', p, next, redo, hot.size);
      return { hot, next, redo, buffered: [], bufferedSince: 0, lock: Promise.resolve() };
    } catch (err) {
      // kafkajs retries the batch; meanwhile the partition waits on ClickHouse exactly as a failing
      // write does, and must raise the same alert (a rebalance during an outage lands here).
      this.writer.emit('writeFailed', err as Error, p, 0, 0);
      throw err;
    }
  }

  private async runChunk(p: number, st: PartitionState, range: ChunkRange, chunk: ChunkMessage[], redo: boolean, heartbeat?: () => Promise<void>): Promise<void> {
    await this.writer.write(p, st.hot, range, chunk, { redo, heartbeat, owned: () => !this.stopping && this.partitions.get(p) === st });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.geo.stop();
    clearInterval(this.lingerTimer);
    await this.consumer.disconnect();
  }
}
