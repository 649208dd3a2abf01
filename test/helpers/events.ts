/** Pipeline events with a known ground truth, and a Kafka producer for them (as the bridge writes them). */
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { TOPICS } from '../../common/kafka.js';
import type { PipelineEvent } from '../../common/contract.js';

export function pipelineEvents(n: number, o: { now?: number; spanMs?: number; devices?: number; geos?: number; prefix?: string } = {}): PipelineEvent[] {
  const now = o.now ?? Date.now();
  const span = o.spanMs ?? 20 * 60_000;
  const devices = o.devices ?? 60;
  const geos = o.geos ?? 20;
  return Array.from({ length: n }, (_, i) => {
    const d = i % devices;
    return { eventId: `cam-${d}:${o.prefix ?? 'e'}${i}`, deviceId: `cam-${d}`, geoId: d % geos, ts: now - span + Math.floor((i * span) / n), type: i % 3 ? 'person' : 'vehicle', agentId: 'gw-1', seq: i + 1, receivedAt: now };
  });
}

/** Each event, and a re-send of every tenth right after it. */
export function withDuplicates(events: PipelineEvent[], every = 10): PipelineEvent[] {
  return events.flatMap((e, i) => (i % every === 0 ? [e, { ...e, seq: e.seq + 1_000_000 }] : [e]));
}

export function countPerGeoMinute(events: PipelineEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) {
    const k = `${e.geoId}@${Math.floor(e.ts / 60_000) * 60}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export async function produceEvents(brokers: string[], events: PipelineEvent[], perSend = 500, pauseMs = 0, compression = CompressionTypes.GZIP): Promise<void> {
  const producer = new Kafka({ clientId: 'test-producer', brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  for (let i = 0; i < events.length; i += perSend) {
    await producer.send({ topic: TOPICS.events, acks: -1, compression, messages: events.slice(i, i + perSend).map((e) => ({ key: e.deviceId, value: JSON.stringify(e), headers: { eventId: e.eventId, agentId: e.agentId } })) });
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
  }
  await producer.disconnect();
}
