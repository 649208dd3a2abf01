/**
 * Kafka no longer holding the head of a chunk cut short (retention passed while the partition
 * had no owner): the chunk is replayed from its kept rows, so nothing of it is lost or repeated,
 * and the dedup state knows its events. The 5-minute chaos run met this case (then 421 events
 * counted twice, when a redo needed the chunk's messages from Kafka).
 */
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { GeoTable } from '../processor/geo.js';
import { startProcessorService } from '../processor/index.js';
import { ProcessorStore } from '../processor/store.js';
import { ChunkWriter, STALE } from '../processor/writer.js';
import { waitFor, whenQuiet } from './helpers/brokers.js';
import { pipelineEvents, produceEvents } from './helpers/events.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(1);

describe('processor: a chunk to finish whose head Kafka no longer holds', () => {
  it('is replayed from its kept rows: every event counted once, re-sends known as duplicates', { timeout: 180_000 }, async () => {
    const events = pipelineEvents(30_000, { prefix: 'gap' });
    await produceEvents(env.kafka.brokers, events, 1_000, 0, CompressionTypes.None);
    // Retention passes over the first 10,000: Kafka's DeleteRecords moves the log start, as
    // time-based retention does when it deletes a segment.
    const kafka = new Kafka({ clientId: 'gap-test', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [TOPICS.events] });
    await admin.deleteTopicRecords({ topic: TOPICS.events, partitions: [{ partition: 0, offset: '10000' }] });
    const [{ low }] = await admin.fetchTopicOffsets(TOPICS.events);
    await admin.disconnect();
    const logStart = Number(low);
    expect(logStart).toBe(10_000);

    // An earlier owner recorded chunk [0, logStart + 2,000) and wrote its events,
    // then lost the partition before the aggregates.
    const end = logStart + 2_000;
    const opts = { lateAfterMs: 30_000, maxAgeMs: 29 * 86_400_000 };
    const writer = new ChunkWriter(new ProcessorStore(env.ch.client, TOPICS.events), new GeoTable(env.ch.client), opts, 60 * 60_000);
    const chunk = events.slice(0, end).map((e, i) => ({ offset: BigInt(i), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
    let checks = 0;
    const part = { partition: 0, hot: await writer.rebuild(0, 0n), range: { start: 0n, end: BigInt(end) }, messages: chunk };
    await expect(writer.write([part], { owned: () => ++checks <= 3 })).rejects.toBe(STALE);

    // Re-sends of 500 events of the lost head, which are in ClickHouse: duplicates.
    const resent = events.slice(0, 500).map((e) => ({ ...e, seq: e.seq + 1_000_000 }));
    await produceEvents(env.kafka.brokers, resent);

    const svc = await startProcessorService({
      brokers: env.kafka.brokers,
      clientId: 'gap-processor',
      logger: silentLogger,
      clickhouseUrl: env.ch.url,
      ...env.ch.auth,
      group: 'g-gap',
      sessionTimeoutMs: 6_000,
      hotHorizonMs: 60 * 60_000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    try {
      const geoSum = async () => Number((await env.ch.query<{ n: string }>('SELECT sum(events) AS n FROM vcam.geo_10s'))[0]!.n);
      const lag = () => [...svc.processor.lag().values()].reduce((a, b) => a + b, 0);
      const duplicates = async () => Number((await env.ch.query<{ n: string }>('SELECT sum(duplicates) AS n FROM vcam.device_1m'))[0]!.n);
      await waitFor(async () => (await duplicates()) >= resent.length && lag() === 0, 120_000, 'the partition processed to its end');
      const raw = await whenQuiet(async () => (await env.ch.query<{ rows: string; ids: string }>('SELECT count() AS rows, uniqExact(event_id) AS ids FROM vcam.events'))[0]!);
      // Every event once: the lost head's from the replayed chunk, the rest from Kafka.
      expect([Number(raw.rows), Number(raw.ids)]).toEqual([events.length, events.length]);
      expect(await geoSum()).toBe(events.length);
      expect(await duplicates()).toBe(resent.length);
    } finally {
      await svc.close();
    }
  });
});
