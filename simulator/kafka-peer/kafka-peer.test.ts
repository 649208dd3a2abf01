/**
 * Tests for the Kafka test peer (librdkafka mock cluster) driven by kafkajs.
 * See docs/testing.md, "The Kafka test peer".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { startKafkaPeer, type KafkaPeer } from './index.js';

const TOPIC = 'peer.roundtrip';
const FAILOVER_TOPIC = 'peer.failover';

describe('kafka test peer', () => {
  let peer: KafkaPeer;

  const kafkaFor = (clientId: string, extra: Partial<KafkaConfig> = {}) =>
    new Kafka({ clientId, brokers: peer.brokers, logLevel: logLevel.NOTHING, ...extra });

  beforeAll(async () => {
    peer = await startKafkaPeer({ topics: [TOPIC, FAILOVER_TOPIC], partitions: 4 });
  }, 60_000);

  afterAll(async () => {
    await peer?.stop();
  });

  it('listens on loopback only and exposes one bootstrap entry per broker', async () => {
    expect(peer.brokers).toHaveLength(1);
    expect(peer.bootstrap).toBe(peer.brokers.join(','));
    for (const b of peer.brokers) expect(b).toMatch(/^127\.0\.0\.1:\d+$/);

    const admin = kafkaFor('peer-admin').admin();
    await admin.connect();
    try {
      const cluster = await admin.describeCluster();
      expect(cluster.brokers.map((b) => b.nodeId)).toEqual([1]);
      const meta = await admin.fetchTopicMetadata({ topics: [TOPIC, FAILOVER_TOPIC] });
      const layout = meta.topics.map((t) => [t.name, t.partitions.length]);
      expect(layout.sort()).toEqual([
        [FAILOVER_TOPIC, 4],
        [TOPIC, 4],
      ]);
    } finally {
      await admin.disconnect();
    }
  });

  it('answers commands with OK and rejects bad ones with ERR', async () => {
    await expect(peer.down(7)).rejects.toThrow(/no such broker 7/);
    await expect(peer.up(0)).rejects.toThrow(/no such broker 0/);
    await expect(peer.up(1)).resolves.toBeUndefined();
  });

  it('round-trips values, keys and headers through a consumer group (acks -1)', async () => {
    const kafka = kafkaFor('peer-roundtrip');
    const producer = kafka.producer();
    const consumer = kafka.consumer({
      groupId: `peer-roundtrip-${process.pid}-${Date.now()}`,
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
    });
    const sent = Array.from({ length: 40 }, (_, i) => ({
      key: `cam-${i % 5}`,
      value: JSON.stringify({ seq: i, camera: `cam-${i % 5}` }),
      headers: { 'x-seq': String(i), 'x-kind': i % 2 ? 'odd' : 'even' },
    }));
    try {
      await producer.connect();
      const res = await producer.send({ topic: TOPIC, acks: -1, messages: sent });
      expect(res.every((r) => r.errorCode === 0)).toBe(true);

      const got: { key: string; value: string; headers: Record<string, string>; partition: number }[] = [];
      await consumer.connect();
      await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            eachMessage: async ({ partition, message }) => {
              const headers: Record<string, string> = {};
              for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
              got.push({
                key: message.key!.toString(),
                value: message.value!.toString(),
                headers,
                partition,
              });
              if (got.length >= sent.length) resolve();
            },
          })
          .catch(reject);
      });

      const bySeq = [...got].sort(
        (a, b) => JSON.parse(a.value).seq - JSON.parse(b.value).seq,
      );
      expect(bySeq.map(({ key, value, headers }) => ({ key, value, headers }))).toEqual(sent);
      // Same key => same partition, and keys spread over more than one partition.
      const partOfKey = new Map<string, Set<number>>();
      for (const m of got) partOfKey.set(m.key, (partOfKey.get(m.key) ?? new Set()).add(m.partition));
      for (const parts of partOfKey.values()) expect(parts.size).toBe(1);
      expect(new Set(got.map((m) => m.partition)).size).toBeGreaterThan(1);
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
    }
  }, 20_000);

  it('down 1 makes a produce with a short retry budget fail; up 1 makes it succeed', async () => {
    // The short budget must be on the Kafka client (cluster/broker-pool
    // retries), not only on the producer: reconnects use the client's retrier.
    const shortRetry = { retries: 1, initialRetryTime: 100, maxRetryTime: 200 };
    const kafka = kafkaFor('peer-failover', { retry: shortRetry, connectionTimeout: 500 });
    const producer = kafka.producer({ retry: shortRetry });
    try {
      await producer.connect();
      const ok1 = await producer.send({ topic: FAILOVER_TOPIC, acks: -1, messages: [{ value: 'before' }] });
      expect(ok1[0]!.errorCode).toBe(0);

      await peer.down(1);
      const t0 = Date.now();
      const err = await producer
        .send({ topic: FAILOVER_TOPIC, acks: -1, messages: [{ value: 'during' }] })
        .then(() => undefined, (e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err!.message).toMatch(/ECONNREFUSED|Connection|closed|disconnect/i);
      expect(Date.now() - t0).toBeLessThan(5_000);

      await peer.up(1);
      const ok2 = await producer.send({ topic: FAILOVER_TOPIC, acks: -1, messages: [{ value: 'after' }] });
      expect(ok2[0]!.errorCode).toBe(0);
    } finally {
      await peer.up(1).catch(() => {});
      await producer.disconnect();
    }

    // Exactly the acknowledged messages are stored: 'during' was never written.
    const admin = kafkaFor('peer-failover-admin').admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(FAILOVER_TOPIC);
      const total = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
      expect(total).toBe(2);
    } finally {
      await admin.disconnect();
    }
  }, 20_000);
});
