/**
 * Kafka mode's dead letters into ClickHouse: the bridge puts every rejected publish or event on
 * `vcam.events.dlq` (reason in headers); this consumer copies them into `vcam.dlq`, so the
 * console, Grafana and `vcam verify` count dead letters in one place in both modes.
 *
 * Exactly once without a chunk log: each partition resumes after the highest offset already in
 * `vcam.dlq` (one INSERT per fetched batch, which ClickHouse applies atomically), and a retried
 * insert carries a token of its offset range.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { DEFAULT_RETENTION, dt64 } from '../clickhouse/schema.js';
import { storableTime } from '../common/contract.js';
import { createGroupConsumer, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { backoffDelay, retry } from '../common/retry.js';

export interface DlqConsumerOptions extends KafkaClientOptions {
  clickhouse: ClickHouseClient;
  group: string;
  sessionTimeoutMs: number;
  maxWaitTimeInMs: number;
}

const GONE = new Error('partition no longer assigned');
/** Dead letters dated older than this are dated when copied (vcam.dlq expires rows by received_at). */
const KEEP_MS = (DEFAULT_RETENTION.rawDays - 1) * 86_400_000;

export class DlqConsumer {
  private consumer: Consumer;
  private stopping = false;
  /** Next offset to copy, per partition; forgotten on every rebalance and read back from ClickHouse. */
  private readonly next = new Map<number, bigint>();
  private generation = 0;
  copied = 0;

  constructor(private readonly o: DlqConsumerOptions) {
    this.consumer = this.createConsumer();
  }

  private createConsumer(): Consumer {
    const consumer = createGroupConsumer(this.o, { groupId: this.o.group, sessionTimeoutMs: this.o.sessionTimeoutMs, maxWaitTimeInMs: this.o.maxWaitTimeInMs });
    consumer.on(consumer.events.REBALANCING, () => {
      this.generation++;
      this.next.clear();
    });
    // As in processor.ts: after a non-retriable crash kafkajs stays down; start a fresh member.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) this.restart(payload.error, 0);
    });
    return consumer;
  }

  private restart(err: Error, attempt: number): void {
    if (this.stopping) return;
    this.o.logger.warn({ err: err.message, attempt }, 'dead-letter copier stopped; starting a new consumer');
    setTimeout(() => {
      void (async () => {
        await this.consumer.disconnect().catch(() => undefined);
        if (this.stopping) return;
        this.generation++;
        this.next.clear();
        this.consumer = this.createConsumer();
        await this.start().catch((e: Error) => this.restart(e, attempt + 1));
      })();
    }, backoffDelay(attempt, { initialMs: 1_000, maxMs: 30_000 }));
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: TOPICS.dlq, fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (b) => this.onBatch(b) });
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
    const generation = this.generation;
    await retry(
      async () => {
        if (generation !== this.generation || this.stopping) throw GONE;
        await heartbeat().catch(() => Promise.reject(GONE));
        const next = this.next.get(p) ?? (await this.storedNext(p));
        const fresh = batch.messages.filter((m) => BigInt(m.offset) >= next);
        if (fresh.length) {
          const [first, last] = [fresh[0]!.offset, fresh[fresh.length - 1]!.offset];
          await this.o.clickhouse.insert({
            table: 'vcam.dlq',
            values: fresh.map((m) => toRow(p, m)),
            format: 'JSONEachRow',
            clickhouse_settings: { insert_deduplication_token: `${TOPICS.dlq}:${p}:${first}-${last}` },
          });
          this.copied += fresh.length;
        }
        if (generation === this.generation) this.next.set(p, BigInt(batch.lastOffset()) + 1n);
      },
      { initialMs: 200, maxMs: 5_000, isRetriable: (err) => err !== GONE },
    ).catch((err) => {
      if (err !== GONE) throw err;
    });
    if (generation !== this.generation) return;
    resolveOffset(batch.lastOffset());
    await this.consumer.commitOffsets([{ topic: TOPICS.dlq, partition: p, offset: (BigInt(batch.lastOffset()) + 1n).toString() }]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer.disconnect();
  }
}

function header(m: KafkaMessage, name: string): string {
  const v = m.headers?.[name];
  return v === undefined ? '' : Array.isArray(v) ? String(v[0] ?? '') : String(v);
}

function toRow(partition: number, m: KafkaMessage) {
  // A header or timestamp that is no time (a stray "1e300" or "-5") would fail this insert on
  // every retry and stop the copier; an old one would have the row expired as it is inserted.
  const stated = Number(header(m, 'receivedAt'));
  const receivedAt = storableTime(Number.isSafeInteger(stated) && stated > 0 ? stated : Number(m.timestamp), Date.now(), KEEP_MS);
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
