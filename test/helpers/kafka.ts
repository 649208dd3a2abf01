/** The local Apache Kafka broker in a temp directory, and a kafkajs consumer that keeps every message. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners, type IHeaders } from 'kafkajs';
import { isNdjson } from '../../common/kafka.js';
import { startLocalKafka, type LocalKafka } from '../../kafka/index.js';
import { waitFor } from './brokers.js';

/**
 * A broker of its own for one test file (one JVM per file: two cores), both topics with
 * `partitions` partitions; `stop()` also removes its data.
 */
export async function startTestKafka(partitions = 16): Promise<LocalKafka> {
  const dataDir = mkdtempSync(join(tmpdir(), 'vcam-kafka-'));
  const kafka = await startLocalKafka({ dataDir, partitions, dlqPartitions: partitions, heapMb: 384 });
  const stop = kafka.stop.bind(kafka);
  return Object.assign(kafka, {
    stop: async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

export interface Consumed {
  topic: string;
  partition: number;
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

/** One event of a `vcam.events` record: every line of an ndjson record, or the record itself. */
export interface ConsumedEvent {
  partition: number;
  /** The event's JSON as it is in Kafka. */
  line: string;
  event: { eventId: string; deviceId: string; agentId: string };
}

/** The partition kafkajs' default partitioner gives a record keyed `key` in a topic of `partitions`. */
export function keyedPartition(key: string, partitions: number): number {
  const metadata = Array.from({ length: partitions }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }));
  return Partitioners.DefaultPartitioner()({ topic: 'any', partitionMetadata: metadata, message: { key, value: null } });
}

export function eventsOf(records: Consumed[]): ConsumedEvent[] {
  const out: ConsumedEvent[] = [];
  for (const r of records) {
    const text = r.value.toString('utf8');
    for (const line of isNdjson(r.headers) ? text.split('\n') : [text]) out.push({ partition: r.partition, line, event: JSON.parse(line) as ConsumedEvent['event'] });
  }
  return out;
}

/** `keep` may shrink what is kept of each message (a long run holds hundreds of thousands). */
export async function consumeAll(brokers: string[], topics: string[], keep: (m: Consumed) => Consumed = (m) => m) {
  const kafka = new Kafka({ clientId: 'vcam-test-consumer', brokers, logLevel: logLevel.NOTHING });
  // A short session and fetch wait: tests wait on what arrives, not on timers.
  const consumer = kafka.consumer({ groupId: `test-${process.pid}-${Math.random().toString(16).slice(2)}`, sessionTimeout: 6_000, heartbeatInterval: 500, maxWaitTimeInMs: 100, retry: { retries: 10 } });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const messages: Consumed[] = [];
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      messages.push(keep({ topic, partition, key: message.key?.toString() ?? null, value: message.value ?? Buffer.alloc(0), headers: stringHeaders(message.headers) }));
    },
  });
  return {
    messages,
    of: (topic: string) => messages.filter((m) => m.topic === topic),
    /** The events in a topic's records (the bridge sends many to a record). */
    events: (topic: string) => eventsOf(messages.filter((m) => m.topic === topic)),
    waitFor: (pred: () => boolean, timeoutMs = 30_000, what = 'messages') => waitFor(pred, timeoutMs, what),
    stop: () => consumer.disconnect(),
  };
}

function stringHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) if (v !== undefined) out[k] = Array.isArray(v) ? v.map(String).join(',') : v.toString();
  return out;
}
