/**
 * Kafka mode's dead letters into ClickHouse: the bridge puts every rejected publish or event on
 * `vcam.events.dlq` (reason in headers); this consumer copies them into `vcam.dlq`, so the
 * console, Grafana and `vcam verify` count dead letters in one place in both modes.
 *
 * Exactly once without a chunk log: each partition resumes after the highest offset already in
 * `vcam.dlq` (dead letters gathered across fetches go in one INSERT, which ClickHouse applies
 * atomically), and a retried insert carries a token of its offset range.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { EventEmitter } from 'node:events';
import { DEFAULT_RETENTION, dt64 } from '../clickhouse/schema.js';
import { storableTime } from '../common/contract.js';
import { createGroupConsumer, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { retry } from '../common/retry.js';
import { KeptConsumer } from './consumer.js';

export interface DlqConsumerOptions extends KafkaClientOptions {
  clickhouse: ClickHouseClient;
  group: string;
  sessionTimeoutMs: number;
  maxWaitTimeInMs: number;
  /** vcam.dlq keeps rows this many days (its TTL): older-dated dead letters are dated when copied. */
  rawRetentionDays?: number;
}

export interface DlqEvents {
  /** Kafka no longer held dead letters never copied (retention passed while nobody copied them). */
  offsetGap: [partition: number, expected: bigint, got: bigint];
}

const GONE = new Error('partition no longer assigned');
/**
 * Dead letters trickle in, a few per fetch: an insert per fetch was ~15 small inserts a second,
 * measured as 29 % of the embedded ClickHouse's time in a 5,000 events/s run (docs/performance.md).
 * They are gathered across fetches and inserted at most this often per partition, or when this many wait.
 */
const GATHER_MS = 1_000;
const GATHER_MAX = 5_000;

/** A partition being copied, from its assignment until the next rebalance. */
interface PartitionCopy {
  /** Next offset not yet in ClickHouse. */
  next: bigint;
  /** Fetched (and resolved with kafkajs, so fetching moves on) but not yet inserted. */
  pending: KafkaMessage[];
  insertedAt: number;
  /** Once per assignment: a fetch that starts beyond `next` is sought back to it. */
  sought: boolean;
  lock: Promise<void>;
}

export class DlqConsumer extends EventEmitter<DlqEvents> {
  /** The group member, restarted with backoff whenever it stops (consumer.ts). */
  readonly member: KeptConsumer;
  private stopping = false;
  /** Forgotten on every rebalance and read back from ClickHouse. */
  private readonly parts = new Map<number, PartitionCopy>();
  private generation = 0;
  private readonly timer: NodeJS.Timeout;
  copied = 0;
  /** Dead letters dated older than this are dated when copied: vcam.dlq's TTL would expire them as they are inserted. */
  private readonly keepMs: number;

  constructor(private readonly o: DlqConsumerOptions) {
    super();
    this.keepMs = ((o.rawRetentionDays ?? DEFAULT_RETENTION.rawDays) - 1) * 86_400_000;
    this.member = new KeptConsumer({ create: () => this.createConsumer(), topic: TOPICS.dlq, eachBatch: (b) => this.onBatch(b) });
    this.timer = setInterval(() => {
      for (const [p, st] of this.parts) if (this.due(st)) void this.flush(p, st).catch(() => undefined);
    }, GATHER_MS / 4);
    this.timer.unref();
  }

  private get consumer(): Consumer {
    return this.member.consumer;
  }

  /** A new member, or a rebalance: every partition is read back from ClickHouse on assignment. */
  private forgetPartitions(): void {
    this.generation++;
    this.parts.clear();
  }

  private createConsumer(): Consumer {
    this.forgetPartitions();
    const consumer = createGroupConsumer(this.o, { groupId: this.o.group, sessionTimeoutMs: this.o.sessionTimeoutMs, maxWaitTimeInMs: this.o.maxWaitTimeInMs });
    consumer.on(consumer.events.REBALANCING, () => this.forgetPartitions());
    return consumer;
  }

  start(): Promise<void> {
    return this.member.start();
  }

  private async storedNext(partition: number): Promise<bigint> {
    const [row] = await (
      await this.o.clickhouse.query({
        query: 'SELECT toString(max(kafka_offset) + 1) AS next, count() AS n FROM vcam.dlq WHERE topic = {topic:String} AND kafka_partition = {p:UInt16}',
        query_params: { topic: TOPICS.dlq, p: partition },
        format: 'JSONEachRow',
      })
    ).json<{ next: string; n: string }>();
    return row && Number(row.n) > 0 ? BigInt(row.next) : 0n;
  }

  private async onBatch({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
    if (batch.isEmpty()) return;
    const p = batch.partition;
    let st = this.parts.get(p);
    if (!st) {
      const generation = this.generation;
      const next = await retry(() => this.storedNext(p), { initialMs: 200, maxMs: 5_000, isRetriable: () => generation === this.generation && !this.stopping });
      // Rebalanced meanwhile: nothing was resolved, the partition's next owner fetches it again.
      if (generation !== this.generation || this.stopping) return;
      st = { next, pending: [], insertedAt: Date.now(), sought: false, lock: Promise.resolve() };
      this.parts.set(p, st);
    }
    const from = st.pending.length ? BigInt(st.pending[st.pending.length - 1]!.offset) + 1n : st.next;
    const first = BigInt(batch.firstOffset()!);
    if (first > from && !st.sought && st.pending.length === 0) {
      // Fetching had moved past dead letters gathered before a rebalance and then forgotten.
      // Once only: if Kafka no longer holds them, the copy goes on from what it holds.
      st.sought = true;
      this.consumer.seek({ topic: TOPICS.dlq, partition: p, offset: from.toString() });
      return;
    }
    // Still past them after seeking back: Kafka no longer holds them. Said, counted and alerted (data_loss).
    if (first > from) this.emit('offsetGap', p, from, first);
    for (const m of batch.messages) if (BigInt(m.offset) >= from) st.pending.push(m);
    resolveOffset(batch.lastOffset());
    if (this.due(st)) await this.flush(p, st, heartbeat);
  }

  private due(st: PartitionCopy): boolean {
    return st.pending.length > 0 && (st.pending.length >= GATHER_MAX || Date.now() - st.insertedAt >= GATHER_MS);
  }

  /**
   * One insert of everything gathered; ClickHouse applies it whole, so after any crash the copy
   * resumes after the highest offset it holds. A retried insert carries a token of its range.
   */
  private flush(p: number, st: PartitionCopy, heartbeat?: () => Promise<void>): Promise<void> {
    const run = async () => {
      if (st.pending.length === 0 || this.parts.get(p) !== st) return;
      const rows = st.pending.slice();
      const keepMs = this.keepMs;
      const [first, last] = [rows[0]!.offset, rows[rows.length - 1]!.offset];
      try {
        await retry(
          async () => {
            if (this.parts.get(p) !== st || this.stopping) throw GONE;
            if (heartbeat) await heartbeat().catch(() => Promise.reject(GONE));
            await this.o.clickhouse.insert({
              table: 'vcam.dlq',
              values: rows.map((m) => toRow(p, m, keepMs)),
              format: 'JSONEachRow',
              clickhouse_settings: { insert_deduplication_token: `${TOPICS.dlq}:${p}:${first}-${last}` },
            });
          },
          { initialMs: 200, maxMs: 5_000, isRetriable: (err) => err !== GONE },
        );
      } catch (err) {
        if (err === GONE) return;
        throw err;
      }
      st.pending.splice(0, rows.length);
      st.next = BigInt(last) + 1n;
      st.insertedAt = Date.now();
      this.copied += rows.length;
      // Only where the next owner starts fetching; what is copied is decided by vcam.dlq itself.
      if (this.parts.get(p) === st) await this.consumer.commitOffsets([{ topic: TOPICS.dlq, partition: p, offset: st.next.toString() }]).catch(() => undefined);
    };
    st.lock = st.lock.then(run, run);
    return st.lock;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.member.stop();
  }
}

function header(m: KafkaMessage, name: string): string {
  const v = m.headers?.[name];
  return v === undefined ? '' : Array.isArray(v) ? String(v[0] ?? '') : String(v);
}

function toRow(partition: number, m: KafkaMessage, keepMs: number) {
  // A header or timestamp that is no time (a stray "1e300" or "-5") would fail this insert on
  // every retry and stop the copier; an old one would have the row expired as it is inserted.
  const stated = Number(header(m, 'receivedAt'));
  const receivedAt = storableTime(Number.isSafeInteger(stated) && stated > 0 ? stated : Number(m.timestamp), Date.now(), keepMs);
  return {
    received_at: dt64(receivedAt),
    agent_id: header(m, 'agentId'),
    // A message that reached this topic without our headers is still a dead letter; say so.
    reason: header(m, 'reason') || 'unknown',
    message: header(m, 'message'),
    payload: m.value?.toString('utf8') ?? '',
    topic: TOPICS.dlq,
    kafka_partition: partition,
    kafka_offset: m.offset,
  };
}
