/**
 * The dead-letter copier (processor/dlq.ts) against the local Kafka broker and the embedded
 * ClickHouse: it dates rows for the configured retention, and dead letters Kafka dropped before
 * they were copied are counted, logged and alerted, not skipped in silence.
 */
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { startProcessorService } from '../processor/index.js';
import { waitFor, whenQuiet } from './helpers/brokers.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(1);
const DAY = 86_400_000;

async function deadLetters(n: number, receivedAt: number, from = 0) {
  const kafka = new Kafka({ clientId: 'dlq-test', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: TOPICS.dlq,
    messages: Array.from({ length: n }, (_, i) => ({
      key: 'gw-1',
      value: `{"broken ${from + i}`,
      headers: { reason: 'invalid_json', message: 'not JSON', agentId: 'gw-1', mqttTopic: 'vcam/v1/agents/gw-1/events', receivedAt: String(receivedAt) },
    })),
  });
  await producer.disconnect();
}

const rows = async () => Number((await env.ch.query<{ n: string }>('SELECT count() AS n FROM vcam.dlq'))[0]!.n);

describe('dead-letter copier', () => {
  it("dates a dead letter older than the configured raw retention when it copies it, so the table's TTL does not expire it on arrival", { timeout: 120_000 }, async () => {
    await deadLetters(1, Date.now() - 20 * DAY);
    const svc = await startProcessorService({
      brokers: env.kafka.brokers,
      clientId: 'dlq-retention',
      logger: silentLogger,
      clickhouseUrl: env.ch.url,
      ...env.ch.auth,
      group: 'g-dlq-retention',
      sessionTimeoutMs: 6_000,
      retention: { rawDays: 7, aggregateDays: 90 },
    });
    try {
      await waitFor(async () => (await rows()) > 0, 60_000, 'the dead letter copied');
      const [row] = await env.ch.query<{ age: string }>('SELECT toUnixTimestamp64Milli(now64(3)) - toUnixTimestamp64Milli(received_at) AS age FROM vcam.dlq');
      expect(Number(row!.age)).toBeLessThan(7 * DAY);
    } finally {
      await svc.close();
    }
  });

  it('counts, logs and alerts dead letters Kafka no longer held when the copier reached them, and copies the rest', { timeout: 120_000 }, async () => {
    await env.ch.client.command({ query: 'TRUNCATE TABLE vcam.dlq' });
    const kafka = new Kafka({ clientId: 'dlq-gap', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const [{ high: before }] = await admin.fetchTopicOffsets(TOPICS.dlq);
    await deadLetters(100, Date.now(), 100);
    // Retention passes over the first 60 of them (and the earlier test's) before any copier reaches them.
    await admin.deleteTopicRecords({ topic: TOPICS.dlq, partitions: [{ partition: 0, offset: String(Number(before) + 60) }] });
    await admin.disconnect();
    const svc = await startProcessorService({ brokers: env.kafka.brokers, clientId: 'dlq-gap', logger: silentLogger, clickhouseUrl: env.ch.url, ...env.ch.auth, group: 'g-dlq-gap', sessionTimeoutMs: 6_000, alerts: { everyMs: 500 } });
    try {
      await waitFor(async () => (await rows()) > 0, 60_000, 'the dead letters Kafka still held copied');
      expect(await whenQuiet(rows)).toBe(40);
      const lost = async () => Number(/vcam_processor_dlq_offsets_lost_total\{[^}]*\} (\d+)/.exec(await svc.registry.metrics())?.[1]);
      expect(await lost()).toBe(Number(before) + 60);
      await waitFor(async () => (await env.ch.query("SELECT 1 FROM vcam.alerts FINAL WHERE kind = 'data_loss' AND state = 'open' AND subject LIKE 'partition:vcam.events.dlq:0:%'")).length === 1, 30_000, 'the data_loss alert');
    } finally {
      await svc.close();
    }
  });
});
