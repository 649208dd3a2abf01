/** A kafkajs consumer for tests: reads topics from the beginning and keeps every message. */
import { Kafka, logLevel, type IHeaders } from 'kafkajs';
import { waitFor } from './brokers.js';

export interface Consumed {
  topic: string;
  partition: number;
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

/** `keep` may shrink what is kept of each message (a long run holds hundreds of thousands). */
export async function consumeAll(brokers: string[], topics: string[], keep: (m: Consumed) => Consumed = (m) => m) {
  const kafka = new Kafka({ clientId: 'vcam-test-consumer', brokers, logLevel: logLevel.NOTHING });
  // Test configuration for the mock cluster (docs/testing.md): short session, short fetch wait.
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
    waitFor: (pred: () => boolean, timeoutMs = 30_000, what = 'messages') => waitFor(pred, timeoutMs, what),
    stop: () => consumer.disconnect(),
  };
}

function stringHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) if (v !== undefined) out[k] = Array.isArray(v) ? v.map(String).join(',') : v.toString();
  return out;
}
