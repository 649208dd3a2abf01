/**
 * Fuzz: 10,000+ random and malformed payloads through a real bridge into the Kafka test peer.
 * No crash; every bad payload or event is in the dead-letter topic with the reason the
 * generator expects; the valid events in between are all forwarded.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { consumeAll } from '../test/helpers/kafka.js';
import { startKafkaPeer, type KafkaPeer } from '../simulator/kafka-peer/index.js';
import { seededRng } from '../simulator/random.js';
import { addAgent, KafkaDownstream, startBridgeService, type BridgeService } from './index.js';

const PAYLOADS = 10_000;
const SEED = Number(process.env.VCAM_FUZZ_SEED ?? 20261125);


type Case = { payload: Buffer; valid: string[]; dlq: string[] };

function generator(agentId: string, seed: number) {
  const rand = seededRng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const now = Date.now();
  let n = 0;
  const event = (over: Record<string, unknown> = {}) => ({ eventId: `fz-${seed}-${++n}`, deviceId: `cam-${int(50)}`, geoId: int(100), ts: now - int(3_600_000), type: 'motion', agentId, seq: n, receivedAt: now, ...over });
  const wrap = (events: unknown[], extra: object = {}) => Buffer.from(JSON.stringify({ v: 1, agentId, events, ...extra }));
  const badEvents: [string, () => unknown][] = [
    ['wrong_type', () => event({ geoId: String(int(100)) })],
    ['wrong_type', () => event({ ts: 'now' })],
    ['invalid_value', () => event({ seq: -int(10) - 1 })],
    ['invalid_value', () => event({ deviceId: 'd'.repeat(65 + int(20_000)) })],
    ['missing_field', () => { const { deviceId: _d, ...e } = event(); return e; }],
    ['unknown_field', () => event({ ['x' + int(1000)]: int(5) })],
    ['not_an_object', () => [int(5), 'x', null][int(3)]],
    ['attrs_too_large', () => event({ attrs: { blob: 'z'.repeat(1100 + int(4000)) } })],
    ['future_ts', () => event({ ts: now + 3_600_000 + int(1e6) })],
    ['invalid_ts', () => event({ ts: 1_700_000_000 })],
    ['agent_mismatch', () => event({ agentId: 'someone-else' })],
  ];
  return (): Case => {
    const kind = int(10);
    if (kind === 0) {
      // Bytes that can never parse (0xff is not UTF-8 and decodes to U+FFFD).
      return { payload: Buffer.from([0xff, ...Array.from({ length: int(200) }, () => int(256))]), valid: [], dlq: ['invalid_json'] };
    }
    if (kind === 1) {
      const text = wrap([event()]).toString();
      return { payload: Buffer.from(text.slice(0, 1 + int(text.length - 2))), valid: [], dlq: ['invalid_json'] };
    }
    if (kind === 2) {
      const shapes = [() => '42', () => '[]', () => '"events"', () => 'null', () => JSON.stringify({ v: 1, agentId }), () => JSON.stringify({ v: 2, agentId, events: [] }), () => JSON.stringify({ v: 1, agentId, events: {} })];
      return { payload: Buffer.from(shapes[int(shapes.length)]!()), valid: [], dlq: ['invalid_payload'] };
    }
    if (kind === 3) return { payload: wrap([event()], { agentId: 'gw-other' }), valid: [], dlq: ['agent_mismatch'] };
    // Mixed batches: valid events with bad ones in between.
    const valid: string[] = [];
    const dlq: string[] = [];
    const events: unknown[] = [];
    for (let i = 0, len = 1 + int(6); i < len; i++) {
      if (rand() < 0.5) {
        const e = event();
        valid.push(e.eventId);
        events.push(e);
      } else {
        const [reason, make] = badEvents[int(badEvents.length)]!;
        dlq.push(reason);
        events.push(make());
      }
    }
    return { payload: wrap(events), valid, dlq };
  };
}

let peer: KafkaPeer;
let svc: BridgeService;
let secret: string;
beforeAll(async () => {
  peer = await startKafkaPeer({ partitions: 16 });
  const agentsFile = join(mkdtempSync(join(tmpdir(), 'vcam-fuzz-')), 'agents.json');
  secret = await addAgent(agentsFile, 'gw-fuzz');
  const downstream = new KafkaDownstream({ brokers: peer.brokers, clientId: 'fuzz-bridge', logger: silentLogger, idempotent: false, compression: 'gzip', sendRetries: 3, sendTimeoutMs: 10_000 });
  svc = await startBridgeService({ mqttPort: 0, agentsFile, downstream, maxPacketBytes: 256 * 1024 });
});
afterAll(async () => {
  await svc?.close();
  await peer?.stop();
});

describe('bridge fuzz', () => {
  it(`survives ${PAYLOADS} random and malformed payloads (seed ${SEED}), dead-letters each with its reason, and forwards the valid events`, async () => {
    const consumer = await consumeAll(peer.brokers, [TOPICS.events, TOPICS.dlq]);
    const next = generator('gw-fuzz', SEED);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: 'gw-fuzz', username: 'gw-fuzz', password: secret, reconnectPeriod: 0 });
    const expectValid = new Set<string>();
    const expectReasons = new Map<string, number>();
    let sent = 0;
    const worker = async () => {
      while (sent < PAYLOADS) {
        sent++;
        const c = next();
        c.valid.forEach((id) => expectValid.add(id));
        c.dlq.forEach((r) => expectReasons.set(r, (expectReasons.get(r) ?? 0) + 1));
        await client.publishAsync('vcam/v1/agents/gw-fuzz/events', c.payload, { qos: 1 });
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));

    // Wrong topics, from a second connection each time: refused, and the bridge keeps serving.
    for (let i = 0; i < 20; i++) {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: 'gw-fuzz', username: 'gw-fuzz', password: secret, reconnectPeriod: 0 });
      const closed = new Promise<void>((r) => c.once('close', () => r()));
      c.publish(['vcam/v1/agents/gw-x/events', 'vcam/v2/agents/gw-fuzz/events', 'a/b', `vcam/v1/agents/gw-fuzz/events/${i}`][i % 4]!, 'x', { qos: 1 });
      await closed;
      c.end(true);
    }
    await client.endAsync().catch(() => undefined);

    const dlqTotal = [...expectReasons.values()].reduce((a, b) => a + b, 0);
    await consumer.waitFor(() => consumer.of(TOPICS.dlq).length >= dlqTotal && consumer.of(TOPICS.events).length >= expectValid.size, 60_000, `${dlqTotal} DLQ records and ${expectValid.size} events`);
    await new Promise((r) => setTimeout(r, 500));
    const dlq = consumer.of(TOPICS.dlq);
    const gotReasons = new Map<string, number>();
    for (const m of dlq) {
      gotReasons.set(m.headers.reason!, (gotReasons.get(m.headers.reason!) ?? 0) + 1);
      expect(m.headers.message).toBeTruthy();
      expect(m.headers.agentId).toBe('gw-fuzz');
    }
    expect(Object.fromEntries(gotReasons)).toEqual(Object.fromEntries(expectReasons));
    expect(new Set(consumer.of(TOPICS.events).map((m) => m.headers.eventId))).toEqual(expectValid);
    expect(consumer.of(TOPICS.events)).toHaveLength(expectValid.size);

    const metrics = await svc.registry.metrics();
    for (const [reason, n] of expectReasons) expect(metrics).toContain(`vcam_bridge_events_rejected_total{reason="${reason}",component="bridge"} ${n}`);
    expect(metrics).toMatch(/vcam_bridge_publishes_total\{result="refused",component="bridge"\} 20/);
    expect(metrics).toMatch(new RegExp(`vcam_bridge_publishes_total\\{result="acked",component="bridge"\\} ${PAYLOADS}`));
    await consumer.stop();
  });
});
