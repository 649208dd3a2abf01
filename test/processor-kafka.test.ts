/**
 * The local Apache Kafka broker → processor → embedded ClickHouse (chDB over HTTP): counts per geo per
 * minute equal the distinct events sent, with 10 % duplicates mixed in and some re-sent far
 * beyond the hot dedup horizon.
 */
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import type { ProcessorService } from '../processor/index.js';
import { waitFor } from './helpers/brokers.js';
import { startTestProcessor, useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(16);

interface Ev {
  eventId: string;
  deviceId: string;
  geoId: number;
  ts: number;
  type: string;
  agentId: string;
  seq: number;
  receivedAt: number;
}

function groundTruth(n: number, now: number) {
  const events: Ev[] = [];
  for (let i = 0; i < n; i++) {
    const device = i % 60;
    events.push({ eventId: `cam-${device}:e${i}`, deviceId: `cam-${device}`, geoId: device % 20, ts: now - 20 * 60_000 + Math.floor((i * 20 * 60_000) / n), type: i % 3 ? 'person' : 'vehicle', agentId: 'gw-1', seq: i + 1, receivedAt: now });
  }
  return events;
}

async function produce(events: Ev[]) {
  const kafka = new Kafka({ clientId: 'test-producer', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < events.length; i += 500) {
    await producer.send({
      topic: TOPICS.events,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: events.slice(i, i + 500).map((e) => ({ key: e.deviceId, value: JSON.stringify(e), headers: { eventId: e.eventId, agentId: e.agentId } })),
    });
  }
  await producer.disconnect();
}

function perGeoMinute(events: Ev[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) {
    const k = `${e.geoId}@${Math.floor(e.ts / 60_000) * 60}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

describe('processor: Kafka → ClickHouse', () => {
  let svc: ProcessorService;
  let ndjsonSvc: ProcessorService;
  afterAll(async () => {
    await svc?.close();
    await ndjsonSvc?.close();
  });

  it('counts each distinct event once per geo and minute, whatever the duplicates', async () => {
    const now = Date.now();
    const unique = groundTruth(6000, now);
    await env.ch.client.insert({ table: 'vcam.geo', values: Array.from({ length: 18 }, (_, g) => ({ geo_id: g, geo_name: `Geo ${g}`, region: g < 9 ? 'north' : 'south', loaded_at: (now / 1000).toFixed(3) })), format: 'JSONEachRow' });
    // 10 % duplicates right after their originals (retries), in the same stream.
    const stream: Ev[] = [];
    unique.forEach((e, i) => {
      stream.push(e);
      if (i % 10 === 0) stream.push({ ...e, seq: e.seq + 100_000 });
    });
    await produce(stream);

    // A 1-minute hot horizon so the late re-sends below must be found by the cold tier.
    svc = await startTestProcessor(env, { clientId: 'test-processor', group: 'p-test', hotHorizonMs: 60_000 });
    const counted = async () => Number((await env.ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n);
    await waitFor(async () => (await counted()) >= unique.length, 60_000, 'all distinct events counted');

    // Re-sends far beyond the hot horizon: events 15+ minutes older than the newest counted.
    const old = unique.slice(0, 300).map((e) => ({ ...e, seq: e.seq + 200_000 }));
    const marker = { ...unique[0]!, eventId: 'cam-0:marker', seq: 999_999, ts: now };
    await produce([...old, marker]);
    // The marker comes after the re-sends in the same partition, and aggregates are written last.
    await waitFor(async () => (await counted()) >= unique.length + 1, 60_000, 'the marker after the old re-sends');
    await waitFor(async () => Number((await env.ch.query<{ n: number }>('SELECT sum(duplicates) AS n FROM vcam.device_1m'))[0]!.n) >= 900, 10_000, 'duplicates counted');

    const rows = await env.ch.query<{ geo_id: number; bucket: string; n: number }>("SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM vcam.geo_type_1m WHERE type != 'marker' GROUP BY geo_id, bucket");
    const got: Record<string, number> = {};
    for (const r of rows) got[`${r.geo_id}@${r.bucket}`] = Number(r.n);
    expect(got).toEqual(perGeoMinute([...unique, marker]));
    const tenS = await env.ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_10s');
    expect(Number(tenS[0]!.n)).toBe(unique.length + 1);
    const raw = await env.ch.query<{ n: number; d: number }>('SELECT count() AS n, uniqExact(event_id) AS d FROM vcam.events');
    expect(raw[0]).toEqual({ n: unique.length + 1, d: unique.length + 1 });
    const dups = await env.ch.query<{ n: number }>('SELECT sum(duplicates) AS n FROM vcam.device_1m');
    expect(Number(dups[0]!.n)).toBe(600 + 300);
    // The join: names from the reference table; geos 18 and 19 are not in it and stay unknown.
    const names = await env.ch.query<{ geo_id: number; geo_name: string }>('SELECT DISTINCT geo_id, geo_name FROM vcam.events ORDER BY geo_id');
    expect(names.find((r) => r.geo_id === 3)!.geo_name).toBe('Geo 3');
    expect(names.find((r) => r.geo_id === 19)!.geo_name).toBe('');
    // The processor reports on itself: status rows with latency percentiles, and no alert about its health.
    await waitFor(async () => Number((await env.ch.query<{ n: number }>('SELECT count() AS n FROM vcam.pipeline_status WHERE latency_p99_ms > 0'))[0]!.n) > 0, 20_000, 'pipeline status rows');
    const metrics = await svc.registry.metrics();
    expect(metrics).toMatch(/vcam_processor_duplicates_dropped_total\{component="processor"\} 900/);
    expect(metrics).toMatch(new RegExp(`vcam_processor_events_unknown_geo_total\\{component="processor"\\} ${unique.filter((e) => e.geoId >= 18).length}`));
  });

  it('counts every line of ndjson messages once, dead-letters a bad line alone, and sizes chunks in events, not messages', async () => {
    const topic = 'vcam.events.ndjson-test';
    const kafka = new Kafka({ clientId: 'test-ndjson', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const now = Date.now();
    const unique = groundTruth(2000, now).map((e) => ({ ...e, eventId: `nd-${e.eventId}`, deviceId: `nd-${e.deviceId}`, geoId: 40 + (e.geoId % 5) }));
    const bad = '{"eventId":"nd-cut-off';
    // 50 messages of 40 events; each but the first repeats the previous message's last event (a
    // retry across records); message 10 carries a bad line, message 20 a trailing newline.
    const values = Array.from({ length: 50 }, (_, m) => {
      const lines = unique.slice(m * 40, m * 40 + 40).map((e) => JSON.stringify(e));
      if (m > 0) lines.push(JSON.stringify({ ...unique[m * 40 - 1]!, seq: 500_000 + m }));
      if (m === 10) lines.splice(5, 0, bad);
      return lines.join('\n') + (m === 20 ? '\n' : '');
    });
    const pretty = { ...unique[0]!, eventId: 'nd-pretty', seq: 900_000 };
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: [...values.map((value) => ({ value, headers: { format: 'ndjson' } })), { value: JSON.stringify(pretty, null, 2) }],
    });
    await producer.disconnect();

    // Started after everything is in Kafka: its first fetch holds all 51 messages, 2,051 events.
    ndjsonSvc = await startTestProcessor(env, { clientId: 'test-ndjson', topic, group: 'p-ndjson', copyDlq: false, maxChunkEvents: 100 });
    const rawCount = async () => Number((await env.ch.query<{ n: number }>("SELECT count() AS n FROM vcam.events WHERE startsWith(event_id, 'nd-')"))[0]!.n);
    await waitFor(async () => (await rawCount()) >= unique.length + 1, 60_000, 'every ndjson event counted');
    await waitFor(async () => ndjsonSvc.processor.lag().get(0) === 0, 20_000, 'the ndjson topic fully written');

    const raw = await env.ch.query<{ n: number; d: number }>("SELECT count() AS n, uniqExact(event_id) AS d FROM vcam.events WHERE startsWith(event_id, 'nd-')");
    expect(raw[0]).toEqual({ n: unique.length + 1, d: unique.length + 1 });
    const geo = await env.ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_10s WHERE geo_id >= 40');
    expect(Number(geo[0]!.n)).toBe(unique.length + 1);
    const dups = await env.ch.query<{ n: number }>("SELECT sum(duplicates) AS n FROM vcam.device_1m WHERE startsWith(device_id, 'nd-')");
    expect(Number(dups[0]!.n)).toBe(49);
    const dead = await env.ch.query<{ reason: string; payload: string; kafka_offset: string }>('SELECT reason, payload, toString(kafka_offset) AS kafka_offset FROM vcam.dlq WHERE startsWith(payload, \'{"eventId":"nd-\')');
    expect(dead).toEqual([{ reason: 'invalid_json', payload: bad, kafka_offset: '10' }]);
    // Room for 100 events a chunk: whole messages (40-42 events each) up to that, never more.
    const lines = [...values.map((v) => v.split('\n').filter(Boolean).length), 1];
    const ranges = await env.ch.query<{ s: string; e: string }>('SELECT toString(start_offset) AS s, toString(end_offset) AS e FROM vcam.chunks FINAL WHERE topic = {t:String} ORDER BY start_offset', { t: topic });
    const sizes = ranges.map((r) => lines.slice(Number(r.s), Number(r.e)).reduce((a, b) => a + b, 0));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2000 + 49 + 1 + 1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100);
  });
});
