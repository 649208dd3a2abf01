/**
 * Offsets that go backwards: the topic deleted and created again under a running processor. The
 * new log's offsets are below those already counted; the processor holds the partition, counts
 * it and alerts, instead of skipping the new log in silence.
 */
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { startProcessorService } from '../processor/index.js';
import { waitFor } from './helpers/brokers.js';
import { pipelineEvents, produceEvents } from './helpers/events.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(1);

describe('processor: Kafka offsets that go backwards', () => {
  it('topic recreated: the partition is held, counted and alerted; nothing of the new log is counted under the old offsets', { timeout: 180_000 }, async () => {
    const first = pipelineEvents(2_000, { prefix: 'old' });
    await produceEvents(env.kafka.brokers, first, 500);
    const svc = await startProcessorService({
      brokers: env.kafka.brokers,
      clientId: 'backwards',
      logger: silentLogger,
      clickhouseUrl: env.ch.url,
      ...env.ch.auth,
      group: 'g-backwards',
      sessionTimeoutMs: 6_000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    try {
      const counted = async () => Number((await env.ch.query<{ n: string }>('SELECT count() AS n FROM vcam.events'))[0]!.n);
      await waitFor(async () => (await counted()) === first.length, 60_000, 'the first log counted');

      const admin = new Kafka({ clientId: 'backwards-admin', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [TOPICS.events] });
      await waitFor(async () => !(await admin.listTopics()).includes(TOPICS.events), 30_000, 'the topic deleted');
      await waitFor(
        () =>
          admin.createTopics({ topics: [{ topic: TOPICS.events, numPartitions: 1 }], waitForLeaders: true }).then(
            () => true,
            () => false,
          ),
        30_000,
        'the topic created again',
      );
      await admin.disconnect();
      const second = pipelineEvents(300, { prefix: 'new' });
      await produceEvents(env.kafka.brokers, second, 300);

      const metric = async () => Number((await svc.registry.metrics()).match(/vcam_processor_offsets_backwards_total\{component="processor"\} (\d+)/)?.[1] ?? 0);
      await waitFor(async () => (await metric()) >= 1, 60_000, 'offsets gone backwards counted');
      const alert = async () => env.ch.query<{ state: string; message: string }>("SELECT state, message FROM vcam.alerts FINAL WHERE kind = 'offsets_backwards'");
      await waitFor(async () => (await alert()).length === 1, 30_000, 'the offsets_backwards alert');
      const [row] = await alert();
      expect(row!.state).toBe('open');
      expect(row!.message).toMatch(/partition 0 ends at offset 300, before offset 2000 already counted .*held/);
      // Held, not skipped and not miscounted: the first log's events, and nothing of the new one.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await counted()).toBe(first.length);
    } finally {
      await svc.close();
    }
  });
});
