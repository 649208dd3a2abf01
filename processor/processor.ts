/**
 * The processor: a Kafka consumer group on `vcam.events` that turns each fetched chunk of a
 * partition into exact rows in ClickHouse.
 *
 * A chunk spans every partition of this processor with messages waiting, so its statements
 * are paid once for all of them.
 *
 * Exactly-once effect (the argument in full is in docs/architecture.md):
 *  1. Before writing a chunk, its offset range in each of its partitions and its rows are
 *     recorded (`vcam.chunks`, `vcam.chunk_rows`).
 *  2. A partition's rows depend only on its messages and on what it counted before its first
 *     offset (hot set rebuilt from ClickHouse, cold lookups restricted to earlier offsets).
 *  3. Every insert carries a token derived from the chunk's ranges, so ClickHouse keeps one copy.
 *  4. On assignment, a partition's last recorded chunk is replayed from its kept rows (same
 *     rows, same tokens) unless Kafka's committed offset shows it was finished; then
 *     processing goes on after it.
 * A crash anywhere therefore leaves each table as if the chunk had been written once.
 */
import { EventEmitter } from 'node:events';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import { createGroupConsumer, isNdjson, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { KeptConsumer } from './consumer.js';
import type { HotSet } from './dedup.js';
import { crashPoint } from '../common/crash.js';
import type { TaskStreak } from '../common/streak.js';
import { GeoTable } from './geo.js';
import { eventsIn, type ChunkMessage, type PipelineOptions } from './pipeline.js';
import { ProcessorStore } from './store.js';
import { ChunkWriter, STALE, type WritePart } from './writer.js';

/** A partition whose replay is not safe: held until an operator decides. */
const HELD = Symbol('held');

/** Chunks' worth of messages a processor holds before it waits for its writes instead of fetching more. */
const BACKPRESSURE_CHUNKS = 2;

/**
 * A batch whose partition stopped being ours (a rebalance, or a refused heartbeat) is abandoned,
 * not thrown to kafkajs: thrown, it crashes the member, which restarts after a backoff of up to
 * 30 s, and in a rebalance every member's crash restarts the rebalance. Left unresolved, the
 * batch is fetched again from the committed offset by whoever owns the partition next.
 */
const ABANDONED = Symbol('abandoned');
function stale(err: unknown): typeof ABANDONED {
  if (err === STALE) return ABANDONED;
  throw err;
}

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
  /** Replay a partition's unfinished last chunk even past ClickHouse's deduplication window (after an operator checked it). */
  replayBeyondWindow?: boolean;
  /** A chunk is written when it holds this many messages (over all its partitions)… */
  maxChunkEvents: number;
  /** …or when its first message has waited this long… */
  lingerMs: number;
  /** …but, unless full, no sooner than this after the previous chunk started (0: back to back). */
  chunkIntervalMs?: number;
}

/** Chunk events come from `processor.writer` (WriterEvents); these are the consumer's own. */
export interface ProcessorEvents {
  recovered: [partition: number, next: bigint, hotIds: number];
  /** The partition's last chunk had to be replayed but its kept rows were gone. */
  rowsExpired: [partition: number, token: string];
  offsetGap: [partition: number, expected: bigint, got: bigint];
  /** The partition's unfinished last chunk is further back than ClickHouse's deduplication window: the partition is held. */
  replayHeld: [partition: number, token: string, distance: number, window: number];
  /** The log ends before offsets already counted (topic recreated, log truncated): the partition is held. */
  offsetsBackwards: [partition: number, expected: bigint, logEnd: bigint];
  geoReloaded: [geos: number];
  /** Background work that retries by itself failed (the linger flush, the geo re-check), or works again. */
  taskFailed: [task: string, err: Error];
  taskOk: [task: string];
}

interface PartitionState {
  hot: HotSet;
  /** The next offset this processor must count. */
  next: bigint;
  /** Fetched, not yet written; fetchedAt starts a message's linger. */
  buffered: (ChunkMessage & { fetchedAt: number; events: number })[];
  /** The events in `buffered`: chunks are sized in events, and an ndjson message holds many. */
  bufferedEvents: number;
}

export function pipelineOptions(o: { lateAfterMs: number; rawRetentionDays: number }): PipelineOptions {
  return { lateAfterMs: o.lateAfterMs, maxAgeMs: (o.rawRetentionDays - 1) * 86_400_000 };
}

export class Processor extends EventEmitter<ProcessorEvents> {
  readonly topic: string;
  /** The group member, restarted with backoff whenever it stops (consumer.ts). */
  readonly member: KeptConsumer;
  private stopping = false;
  private readonly store: ProcessorStore;
  private readonly geo: GeoTable;
  private readonly partitions = new Map<number, PartitionState>();
  readonly writer: ChunkWriter;
  private lingerTimer?: NodeJS.Timeout;
  private assigned: number[] = [];
  /** Next offset to count per partition and the partition's high watermark, for lag. */
  private readonly positions = new Map<number, { next: bigint; highWatermark: bigint }>();
  /** Events per message in the partition's recent fetches (a moving average), for its lag in events. */
  private readonly eventsPerMessage = new Map<number, number>();
  /** The write loop, while it runs: chunks are written one after another. */
  private flushing?: Promise<void>;
  /**
   * The heartbeat of the latest batch, for the write loop: it keeps this member in the group
   * while a write waits on ClickHouse, and it fails once the group has moved on (a rebalance,
   * or this member expelled), which stops the write before it could land after the next owner's.
   */
  private heartbeat?: () => Promise<void>;
  /** When the last chunk write started (ms). */
  private lastChunkAt = -Infinity;
  /** Counts rebalances: a replay started before the last one is no longer this member's to do. */
  private generation = 0;
  /** Chunks replayed since the last rebalance: one chunk may be the last of several partitions. */
  private readonly replayed = new Set<string>();
  /**
   * Partitions whose chunk write stopped half-way while they stayed ours, with the offset that
   * chunk started at: their recovery must replay the last recorded chunk whatever the fetch
   * position says (it is not the committed offset), and go on from no earlier than that offset.
   */
  private readonly abandoned = new Map<number, bigint>();

  constructor(private readonly o: ProcessorOptions) {
    super();
    this.topic = o.topic ?? TOPICS.events;
    this.store = new ProcessorStore(o.clickhouse, this.topic);
    this.geo = new GeoTable(o.clickhouse);
    this.writer = new ChunkWriter(this.store, this.geo, pipelineOptions(o), o.hotHorizonMs, o.dedup);
    this.member = new KeptConsumer({ create: () => this.createConsumer(), topic: this.topic, eachBatch: (b) => this.onBatch(b) });
  }

  private get consumer(): Consumer {
    return this.member.consumer;
  }

  /**
   * Events waiting per partition. Kafka counts messages (high watermark minus the next offset to
   * count) and an ndjson message holds many events: those fetched are counted exactly, the rest
   * at the average of the messages fetched lately.
   */
  lag(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, pos] of this.positions) {
      // A partition held because its log went backwards has its high watermark below the next offset: no lag, not a negative one.
      const messages = Math.max(0, Number(pos.highWatermark - pos.next));
      const st = this.partitions.get(p);
      const fetched = Math.min(messages, st?.buffered.length ?? 0);
      out.set(p, (st && fetched ? st.bufferedEvents : 0) + Math.round((messages - fetched) * (this.eventsPerMessage.get(p) ?? 1)));
    }
    return out;
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

  /** No partition is ours to write until it is assigned again and its state rebuilt. */
  private forgetPartitions(): void {
    this.generation++;
    this.heartbeat = undefined;
    this.partitions.clear();
    this.replayed.clear();
    this.abandoned.clear();
  }

  private createConsumer(): Consumer {
    // A new member (first or after a crash) starts from nothing. Positions stay, so lag shows
    // the last known backlog, not 0, while no member is in the group.
    this.forgetPartitions();
    this.assigned = [];
    const consumer = createGroupConsumer(this.o, { groupId: this.o.group, sessionTimeoutMs: this.o.sessionTimeoutMs, maxWaitTimeInMs: this.o.maxWaitTimeInMs });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const mine = new Set(payload.memberAssignment[this.topic] ?? []);
      this.assigned = [...mine].sort((a, b) => a - b);
      for (const p of this.partitions.keys()) if (!mine.has(p)) this.partitions.delete(p);
      for (const p of this.positions.keys()) if (!mine.has(p)) this.positions.delete(p);
      for (const p of this.eventsPerMessage.keys()) if (!mine.has(p)) this.eventsPerMessage.delete(p);
    });
    // From the moment a rebalance starts, a chunk being retried stops instead of racing the new owner.
    consumer.on(consumer.events.REBALANCING, () => this.forgetPartitions());
    return consumer;
  }

  async start(): Promise<void> {
    await this.geo.watch(this.o.geoRefreshMs, (geos) => this.emit('geoReloaded', geos), this.task('geo_refresh'));
    await this.member.start();
    // A partition that goes quiet still gets its last chunk written within the linger time.
    this.lingerTimer = setInterval(
      () => {
        if (this.anyDue()) this.background(this.flush(), 'flush');
      },
      Math.max(10, this.o.lingerMs / 2),
    );
    this.lingerTimer.unref();
  }

  private async onBatch(b: EachBatchPayload): Promise<void> {
    const { batch } = b;
    const p = batch.partition;
    const heartbeat = () => b.heartbeat();
    this.heartbeat = heartbeat;
    this.positions.set(p, { next: this.partitions.get(p)?.next ?? BigInt(batch.firstOffset() ?? 0), highWatermark: BigInt(batch.highWatermark) });
    if (batch.isEmpty()) return;
    let st = this.partitions.get(p);
    if (!st) {
      const recovered = await this.recover(p, BigInt(batch.firstOffset()!), heartbeat).catch(stale);
      if (recovered === ABANDONED) return;
      if (recovered === HELD) {
        // Held, not skipped: counting on would leave the chunk's fate unknown. An operator decides (docs/operations.md).
        this.consumer.pause([{ topic: this.topic, partitions: [p] }]);
        return;
      }
      st = recovered;
      this.partitions.set(p, st);
      if (BigInt(batch.firstOffset()!) !== st.next) {
        // Fetch exactly from where counting must go on.
        this.consumer.seek({ topic: this.topic, partition: p, offset: st.next.toString() });
        return;
      }
    }
    const pending = st.buffered.length ? st.buffered[st.buffered.length - 1]!.offset + 1n : st.next;
    if (BigInt(batch.highWatermark) < pending) {
      // Offsets this processor counted (or holds) are no longer in the log: the topic was
      // recreated or its log truncated. Counting the new log under the old offsets would skip it
      // in silence (everything below `pending` looks done) and reuse the old chunks' tokens, so
      // the partition is held, counted and alerted until an operator decides (docs/operations.md).
      this.emit('offsetsBackwards', p, pending, BigInt(batch.highWatermark));
      this.consumer.pause([{ topic: this.topic, partitions: [p] }]);
      return;
    }
    const fresh = batch.messages.filter((m) => BigInt(m.offset) >= pending);
    if (fresh.length > 0) {
      const first = BigInt(fresh[0]!.offset);
      // Kafka no longer holds the offsets we need: data loss, loudly, never silently. What is
      // buffered stays, and the next chunk's range spans the hole.
      if (first > pending) this.emit('offsetGap', p, pending, first);
      const fetchedAt = Date.now();
      let events = 0;
      for (const m of fresh) {
        const ndjson = isNdjson(m.headers);
        const n = eventsIn({ value: m.value, ndjson });
        st.buffered.push({ offset: BigInt(m.offset), timestamp: Number(m.timestamp), value: m.value, ndjson, fetchedAt, events: n });
        events += n;
      }
      st.bufferedEvents += events;
      const before = this.eventsPerMessage.get(p);
      const now = events / fresh.length;
      this.eventsPerMessage.set(p, before === undefined ? now : 0.8 * before + 0.2 * now);
    }
    // Fetching moves on; what counts as done is only ever our own commit after a chunk's writes.
    b.resolveOffset(batch.lastOffset());
    if (!this.anyDue()) return;
    // kafkajs fetches nothing while this batch is in hand, so a chunk is written behind the
    // fetches (rule 6 in docs/architecture.md); only a processor holding more than it can write
    // waits for it, and so stops fetching.
    const writing = this.flush();
    if (this.waiting() >= BACKPRESSURE_CHUNKS * this.o.maxChunkEvents) await writing.catch(stale);
    else this.background(writing, 'flush');
  }

  private task(name: string): TaskStreak {
    return { failed: (err) => this.emit('taskFailed', name, err as Error), ok: () => this.emit('taskOk', name) };
  }

  /** Work nobody awaits (it is retried by the next batch or linger tick): its failure is still reported. */
  private background(work: Promise<unknown>, name: string): void {
    const t = this.task(name);
    work.then(
      () => t.ok(),
      (err: unknown) => t.failed(err),
    );
  }

  private waiting(): number {
    let n = 0;
    for (const st of this.partitions.values()) n += st.bufferedEvents;
    return n;
  }

  /**
   * A partition is due when its buffer is full or its oldest message has waited the linger time.
   * A partition that is behind needs no longer linger: what it fetches while a chunk is written
   * goes into the next chunk, so chunks grow with the backlog.
   */
  private due(st: PartitionState): boolean {
    if (st.buffered.length === 0) return false;
    if (st.bufferedEvents >= this.o.maxChunkEvents) return true;
    return Date.now() - st.buffered[0]!.fetchedAt >= this.o.lingerMs;
  }

  private anyDue(): boolean {
    if (this.waiting() >= this.o.maxChunkEvents) return true;
    // Paced: a chunk costs ClickHouse the same statements whatever its size, so under load fewer, larger ones.
    if (Date.now() - this.lastChunkAt < (this.o.chunkIntervalMs ?? 0)) return false;
    for (const st of this.partitions.values()) if (this.due(st)) return true;
    return false;
  }

  /**
   * The next chunk: the due partitions first, then every other partition with messages waiting
   * (they ride along: the chunk's statements cost the same), up to maxChunkEvents in all.
   */
  private nextChunk(): { part: WritePart; st: PartitionState }[] {
    if (!this.anyDue()) return [];
    const waiting = [...this.partitions].filter(([, st]) => st.buffered.length > 0);
    waiting.sort(([p, a], [q, b]) => Number(this.due(b)) - Number(this.due(a)) || p - q);
    let room = this.o.maxChunkEvents;
    const chunk: { part: WritePart; st: PartitionState }[] = [];
    for (const [p, st] of waiting) {
      if (room <= 0) break;
      // Whole messages, at least one: a message larger than the room is a chunk of its own.
      let n = 0;
      let events = 0;
      while (n < st.buffered.length && (n === 0 || events + st.buffered[n]!.events <= room)) events += st.buffered[n++]!.events;
      const messages = st.buffered.slice(0, n);
      room -= events;
      chunk.push({ st, part: { partition: p, hot: st.hot, range: { start: st.next, end: messages[messages.length - 1]!.offset + 1n }, messages } });
    }
    return chunk.sort((a, b) => a.part.partition - b.part.partition);
  }

  /** Writes chunks while any partition is due, one at a time; a call while it runs joins it. */
  private flush(): Promise<void> {
    const run = async () => {
      for (let chunk = this.nextChunk(); chunk.length > 0; chunk = this.nextChunk()) {
        const ours = ({ part, st }: { part: WritePart; st: PartitionState }) => this.partitions.get(part.partition) === st;
        this.lastChunkAt = Date.now();
        try {
          await this.writer.write(
            chunk.map((c) => c.part),
            { owned: () => !this.stopping && chunk.every(ours), heartbeat: this.heartbeat },
          );
        } catch (err) {
          // Stopped half-way (a refused heartbeat: a rebalance, or Kafka unreachable): the chunk
          // may be recorded and partly written. Its partitions start over from recovery, which
          // replays it; a new chunk from the same offsets would have new tokens and count twice.
          for (const c of chunk) {
            if (!ours(c)) continue;
            this.partitions.delete(c.part.partition);
            this.abandoned.set(c.part.partition, c.part.range.start);
            // Fetched already, so no batch would come to recover from: fetch the chunk again.
            this.consumer.seek({ topic: this.topic, partition: c.part.partition, offset: c.part.range.start.toString() });
          }
          throw err;
        }
        // A partition revoked after the last statement: its next owner finds the chunk unfinished and replays it (ClickHouse drops the repeat).
        const kept = chunk.filter(ours);
        for (const { part, st } of kept) {
          // What was fetched while this chunk was written has lingered already: it may be due now.
          for (const m of st.buffered.splice(0, part.messages.length)) st.bufferedEvents -= m.events;
          st.next = part.range.end;
          this.positions.set(part.partition, { next: part.range.end, highWatermark: this.positions.get(part.partition)?.highWatermark ?? part.range.end });
        }
        // Kafka's committed offsets tell each partition's next owner that this chunk is finished.
        if (kept.length) await this.consumer.commitOffsets(kept.map(({ part }) => ({ topic: this.topic, partition: part.partition, offset: part.range.end.toString() })));
        crashPoint('chunk-committed');
        if (kept.length < chunk.length) return;
      }
    };
    this.flushing ??= run().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /**
   * The partition's state before its first batch: the last recorded chunk replayed if it may be
   * unfinished, and the hot dedup set rebuilt. ClickHouse failing is retried here, as a write is,
   * with heartbeats, so the member keeps its place; a rebalance meanwhile throws STALE.
   */
  private async recover(p: number, fetchedFrom: bigint, heartbeat: () => Promise<void>): Promise<PartitionState | typeof HELD> {
    const generation = this.generation;
    const o = { heartbeat, owned: () => !this.stopping && this.generation === generation };
    const last = await this.writer.whileOwned(p, o, () => this.store.lastChunk(p));
    // Kafka's committed offset (where a new assignment's first fetch begins) at or past the chunk's end proves it finished.
    const abandonedAt = this.abandoned.get(p);
    if (last && (abandonedAt !== undefined || fetchedFrom < last.range.end) && !this.replayed.has(last.token)) {
      const outcome = await this.writer.replay(last, p, { ...o, beyondWindow: this.o.replayBeyondWindow });
      if (outcome.kind === 'beyond_window') {
        this.emit('replayHeld', p, last.token, outcome.distance, outcome.window);
        return HELD;
      }
      if (outcome.kind === 'expired') this.emit('rowsExpired', p, last.token);
      this.replayed.add(last.token);
    }
    let next = last ? last.range.end : fetchedFrom;
    if (abandonedAt !== undefined && (!last || abandonedAt > next)) next = abandonedAt;
    const hot = await this.writer.whileOwned(p, o, () => this.writer.rebuild(p, next));
    this.abandoned.delete(p);
    this.emit('recovered', p, next, hot.size);
    return { hot, next, buffered: [], bufferedEvents: 0 };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.geo.stop();
    clearInterval(this.lingerTimer);
    await this.member.stop();
  }
}
