/**
 * The bridge against real parts: mqtt.js publishers and real agents → aedes in the bridge →
 * the local Apache Kafka broker → a kafkajs consumer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgentService } from '../agent/index.js';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { freePort, waitFor, whenQuiet } from '../test/helpers/brokers.js';
import { consumeAll, keyedPartition, startTestKafka } from '../test/helpers/kafka.js';
import type { LocalKafka } from '../kafka/index.js';
import { createRegistry } from '../common/metrics.js';
import { addAgent, KafkaDownstream, startBridgeService, type BridgeService, type KafkaDownstreamOptions } from './index.js';

let kafka: LocalKafka;
let agentsFile: string;
const secrets: Record<string, string> = {};

beforeAll(async () => {
  kafka = await startTestKafka(16);
  agentsFile = join(mkdtempSync(join(tmpdir(), 'vcam-bridge-')), 'agents.json');
  for (const id of ['gw-1', 'gw-2', 'gw-3']) secrets[id] = await addAgent(agentsFile, id);
});
afterAll(() => kafka?.stop());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bridge(over: Partial<Parameters<typeof startBridgeService>[0]> = {}, kafkaOver: Partial<KafkaDownstreamOptions> = {}): Promise<BridgeService> {
  const registry = over.registry ?? createRegistry({ component: 'bridge' });
  const downstream = new KafkaDownstream({
    brokers: kafka.brokers,
    clientId: 'test-bridge',
    logger: silentLogger,
    registry,
    // The production settings: idempotent producer, gzip.
    idempotent: true,
    compression: 'gzip',
    // Few and quick retries inside kafkajs, so that a Kafka outage reaches the bridge's own loop fast.
    sendRetries: 1,
    sendTimeoutMs: 5_000,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 },
    ...kafkaOver,
  });
  const svc = await startBridgeService({ mqttPort: 0, httpPort: 0, agentsFile, downstream, registry, forwardBackoff: { initialMs: 100, maxMs: 500 }, ...over });
  cleanups.push(() => svc.close());
  return svc;
}

async function consumer() {
  const c = await consumeAll(kafka.brokers, [TOPICS.events, TOPICS.dlq]);
  cleanups.push(() => c.stop());
  return c;
}

function connect(port: number, id: string, secret = secrets[id], extra: mqtt.IClientOptions = {}) {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 5_000, ...extra });
}

const now = Date.now();
let seqCounter = 0;
const pev = (agentId: string, i: number, extra: object = {}) => ({
  eventId: `cam-${i % 9}:${agentId}-${i}`,
  deviceId: `cam-${i % 9}`,
  geoId: i % 4,
  ts: now - 5_000 + i,
  type: 'person',
  agentId,
  seq: ++seqCounter,
  receivedAt: now,
  ...extra,
});
const payload = (agentId: string, events: object[]) => JSON.stringify({ v: 1, agentId, events });
const metric = async (svc: BridgeService, name: string) => {
  const text = await svc.registry.metrics();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
};

describe('bridge → Kafka', () => {
  it('forwards every valid event once per publish, many to a record (ndjson), each on the partition a record keyed by its deviceId gets', async () => {
    const svc = await bridge();
    const kc = await consumer();
    const c1 = await connect(svc.mqttPort, 'gw-1');
    const c2 = await connect(svc.mqttPort, 'gw-2');
    const sent: ReturnType<typeof pev>[] = [];
    for (let k = 0; k < 20; k++) {
      for (const [client, id] of [
        [c1, 'gw-1'],
        [c2, 'gw-2'],
      ] as const) {
        const events = Array.from({ length: 50 }, (_, i) => pev(id, k * 50 + i));
        sent.push(...events);
        await client.publishAsync(`vcam/v1/agents/${id}/events`, payload(id, events), { qos: 1 });
      }
    }
    // Publish one batch twice, as an agent does after a lost PUBACK: it arrives twice, same ids.
    await c1.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', sent.slice(0, 10)), { qos: 1 });
    await Promise.all([c1.endAsync(), c2.endAsync()]);

    await kc.waitFor(() => kc.events(TOPICS.events).length >= sent.length + 10, 30_000, 'all events in Kafka');
    const got = kc.events(TOPICS.events);
    expect(got).toHaveLength(sent.length + 10);
    const records = kc.of(TOPICS.events);
    expect(records.every((r) => r.headers.format === 'ndjson' && Object.keys(r.headers).length === 1)).toBe(true);
    expect(records.length).toBeLessThan(got.length);
    const byId = new Map<string, number>();
    for (const m of got) {
      expect(m.line).toBe(JSON.stringify(sent.find((e) => e.eventId === m.event.eventId)));
      byId.set(m.event.eventId, (byId.get(m.event.eventId) ?? 0) + 1);
    }
    expect(byId.size).toBe(sent.length);
    expect(sent.every((e, i) => byId.get(e.eventId) === (i < 10 ? 2 : 1))).toBe(true);
    // One device, one partition, the one kafkajs keys it to: a duplicate always lands beside its original.
    const wrong = got.filter((m) => m.partition !== keyedPartition(m.event.deviceId, 16));
    expect(wrong).toEqual([]);
    expect(await metric(svc, 'vcam_bridge_events_forwarded_total')).toContain(`vcam_bridge_events_forwarded_total{downstream="kafka",component="bridge"} ${sent.length + 10}`);
  });

  it('withholds the PUBACK while Kafka is down and sends it after recovery; the agent outbox then drains', async () => {
    const svc = await bridge();
    const kc = await consumer();
    const agent = await startAgentService({
      id: 'gw-3',
      dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-')),
      httpPort: 0,
      mqttUrl: `mqtt://127.0.0.1:${svc.mqttPort}`,
      mqttUsername: 'gw-3',
      mqttPassword: secrets['gw-3'],
      batchMaxEvents: 100,
    });
    cleanups.push(() => agent.close());
    await waitFor(() => agent.agent.connected, 10_000, 'agent connected');

    await kafka.kill();
    cleanups.push(() => kafka.start());
    const ids: string[] = [];
    for (let k = 0; k < 5; k++) {
      const body = Array.from({ length: 100 }, (_, i) => ({ deviceId: `cam-${i % 5}`, geoId: 1, ts: now - 1_000 + k * 100 + i, type: 'vehicle' }));
      const r = await fetch(`http://127.0.0.1:${agent.port}/v1/events`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      expect(r.status).toBe(202);
      ids.push(...((await r.json()) as { eventIds: string[] }).eventIds);
    }
    await waitFor(() => svc.bridge.publishesInFlight > 0, 10_000, 'a publish pending at the bridge');
    await waitFor(async () => / [1-9]\d*$/.test(await metric(svc, 'vcam_bridge_forward_failures_total')), 20_000, 'failed Kafka writes');
    await new Promise((r) => setTimeout(r, 1_000));
    // Nothing acknowledged: every event is still in the agent's outbox.
    expect(agent.agent.stats().backlogEvents).toBe(500);
    expect(svc.bridge.publishesInFlight).toBeGreaterThan(0);

    await kafka.start();
    await waitFor(() => agent.agent.stats().backlogEvents === 0, 60_000, 'the agent outbox to drain after Kafka returns');
    const fromAgent = () =>
      new Set(
        kc
          .events(TOPICS.events)
          .filter((m) => m.event.agentId === 'gw-3')
          .map((m) => m.event.eventId),
      );
    await kc.waitFor(() => fromAgent().size >= 500, 30_000, 'all 500 events in Kafka');
    expect(fromAgent()).toEqual(new Set(ids));
  });

  it('with the idempotent producer, kill -9 of the broker mid-stream loses nothing and duplicates nothing but what the agents re-sent', { timeout: 120_000 }, async () => {
    // kafkajs' own retries (the same batches, the same sequence numbers; its reconnects too)
    // outlast the restart, so a batch the broker wrote just before dying is recognised as a
    // duplicate when it comes again.
    const svc = await bridge({}, { sendRetries: 8, retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 3_000 } });
    const kc = await consumer();
    const agents = ['gw-1', 'gw-2'] as const;
    const clients = await Promise.all(agents.map((id) => connect(svc.mqttPort, id)));
    const expected = new Map<string, number>();
    let acked = 0;
    const stream = agents.map(async (id, a) => {
      for (let k = 0; k < 60; k++) {
        const events = Array.from({ length: 50 }, (_, i) => pev(id, 100_000 + k * 50 + i, { eventId: `idem-${id}-${k}-${i}` }));
        for (const e of events) expected.set(e.eventId, 1);
        const body = payload(id, events);
        for (;;) {
          try {
            await clients[a]!.publishAsync(`vcam/v1/agents/${id}/events`, body, { qos: 1 });
            break;
          } catch {
            // A lost connection: like an agent, publish the same batch again on a new one.
            for (const e of events) expected.set(e.eventId, expected.get(e.eventId)! + 1);
            clients[a] = await connect(svc.mqttPort, id);
          }
        }
        acked += events.length;
      }
    });
    await waitFor(() => acked >= 1_500, 30_000, 'a third of the stream acknowledged');
    await kafka.kill();
    await new Promise((r) => setTimeout(r, 1_000));
    await kafka.start();
    await Promise.all(stream);
    await Promise.all(clients.map((c) => c.endAsync()));
    const total = [...expected.values()].reduce((x, y) => x + y, 0);
    const ours = () => kc.events(TOPICS.events).filter((m) => m.event.eventId.startsWith('idem-'));
    await kc.waitFor(() => ours().length >= total, 60_000, 'every event in Kafka');
    expect(await whenQuiet(() => ours().length)).toBe(total);
    const got = new Map<string, number>();
    for (const m of ours()) got.set(m.event.eventId, (got.get(m.event.eventId) ?? 0) + 1);
    expect(got).toEqual(expected);
  });

  it(
    'a send whose outcome is unknown (the broker paused past the request timeout, then writing it) is not matched with different events under the same sequence numbers: the next send goes under a new producer id, nothing is lost',
    { timeout: 60_000 },
    async () => {
      // One device, so every event lands on one partition: the case where sequence numbers collide.
      const ev = (agentId: string, n: number) => Array.from({ length: 5 }, (_, i) => pev(agentId, 9 * (n + i)));
      const svc = await bridge({ forwardBackoff: { initialMs: 8_000, maxMs: 8_000, jitter: 0 } }, { sendRetries: 1, requestTimeoutMs: 1_500 });
      const kc = await consumer();
      const [c1, c2] = await Promise.all([connect(svc.mqttPort, 'gw-1'), connect(svc.mqttPort, 'gw-2')]);
      const inKafka = (events: { eventId: string }[]) => kc.events(TOPICS.events).filter((m) => events.some((e) => e.eventId === m.event.eventId)).length;
      const warm = ev('gw-1', 1_000);
      await c1.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', warm), { qos: 1 });

      const pid = kafka.pid!;
      process.kill(pid, 'SIGSTOP');
      cleanups.push(async () => void (kafka.pid === pid && process.kill(pid, 'SIGCONT')));
      const first = ev('gw-1', 2_000);
      const firstAcked = c1.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', first), { qos: 1 });
      await waitFor(async () => / [1-9]\d*$/.test(await metric(svc, 'vcam_bridge_forward_failures_total')), 10_000, 'the send to time out');
      // The request was on the wire: the resumed broker writes it, though nobody waits for the answer.
      process.kill(pid, 'SIGCONT');
      await kc.waitFor(() => inKafka(first) === first.length, 20_000, 'the timed-out send written after all');

      // As many events as the unknown send, before the bridge sends that one again: under the old
      // producer id and sequence numbers the broker would take them for that send's duplicate.
      const second = ev('gw-2', 3_000);
      await c2.publishAsync('vcam/v1/agents/gw-2/events', payload('gw-2', second), { qos: 1 });
      await firstAcked;
      // Both acknowledged to the agents; the first is in Kafka twice (its unknown send, then again).
      expect(await whenQuiet(() => ({ warm: inKafka(warm), first: inKafka(first), second: inKafka(second) }))).toEqual({ warm: 5, first: 10, second: 5 });
      expect(await metric(svc, 'vcam_bridge_kafka_producer_renewals_total')).toMatch(/ 1$/);
      await Promise.all([c1.endAsync(), c2.endAsync()]);
    },
  );

  it("calls aedes back once per publish, first: a listener that throws after the write neither withholds the PUBACK nor closes the agent's connection; the throw is counted", async () => {
    const svc = await bridge();
    const kc = await consumer();
    let thrown = 0;
    svc.bridge.prependListener('forwarded', () => {
      if (thrown++ === 0) throw new Error('a listener bug');
    });
    const c = await connect(svc.mqttPort, 'gw-1');
    const [a, b] = [[pev('gw-1', 801, { eventId: 'listener-throws-1' })], [pev('gw-1', 802, { eventId: 'listener-throws-2' })]];
    await c.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', a), { qos: 1 });
    await c.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', b), { qos: 1 });
    expect(c.connected).toBe(true);
    await c.endAsync();
    const ids = [a[0]!.eventId, b[0]!.eventId];
    const ours = () => kc.events(TOPICS.events).filter((m) => ids.includes(m.event.eventId)).length;
    await kc.waitFor(() => ours() > 0, 30_000, 'the events in Kafka');
    expect(await whenQuiet(ours)).toBe(2);
    expect(await metric(svc, 'vcam_bridge_internal_errors_total')).toMatch(/where="publish".* 1$/);
  });

  it('started while Kafka is down, waits for it instead of exiting (up for Prometheus, the waits counted as failed forwards, not ready), then accepts agents and forwards', async () => {
    await kafka.kill();
    cleanups.push(() => kafka.start());
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    let started = false;
    const httpPort = await freePort();
    const starting = bridge({ logger, httpPort }).then((svc) => ((started = true), svc));
    await waitFor(() => lines.some((l) => l.includes('waiting for the downstream (kafka)')), 30_000, 'the bridge to say it waits for Kafka');
    expect(started).toBe(false);
    const failures = async () => Number((await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).match(/vcam_bridge_forward_failures_total\{component="bridge"\} (\d+)/)?.[1]);
    await waitFor(async () => (await failures()) >= 1, 10_000, 'the failed attempts on /metrics');
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ ok: false, phase: 'waiting for the downstream (kafka)' });
    await kafka.start();
    const svc = await starting;
    const kc = await consumer();
    const c = await connect(svc.mqttPort, 'gw-1');
    const events = [pev('gw-1', 100_001)];
    await c.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', events), { qos: 1 });
    await c.endAsync();
    await kc.waitFor(() => kc.events(TOPICS.events).some((m) => m.event.eventId === events[0]!.eventId), 20_000, 'the event in Kafka');
  });

  it('refuses a wrong secret, anonymous clients, a client id that is not the agent, and subscriptions', async () => {
    const svc = await bridge();
    await expect(connect(svc.mqttPort, 'gw-1', 'not-the-secret')).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: 'gw-1', reconnectPeriod: 0 })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: 'other', username: 'gw-1', password: secrets['gw-1'], reconnectPeriod: 0 })).rejects.toThrow(/Identifier rejected/i);
    await expect(connect(svc.mqttPort, 'unknown-agent', 'whatever')).rejects.toThrow(/Bad username or password|Not authorized/i);
    const ok = await connect(svc.mqttPort, 'gw-1');
    await expect(ok.subscribeAsync('vcam/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    expect(ok.connected).toBe(true);
    await ok.endAsync();
    expect(await metric(svc, 'vcam_bridge_connections_total')).toMatch(/result="bad_credentials".* 3/);
  });

  it("refuses a publish to another agent's topic: the connection is closed and nothing reaches Kafka", async () => {
    const svc = await bridge();
    const kc = await consumer();
    const c = await connect(svc.mqttPort, 'gw-1');
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const forbidden = `forbidden-${Date.now()}`;
    c.publish('vcam/v1/agents/gw-2/events', payload('gw-2', [pev('gw-2', 1, { eventId: forbidden })]), { qos: 1 });
    await closed;
    c.end(true);
    // A later valid publish from another agent still goes through.
    const c2 = await connect(svc.mqttPort, 'gw-2');
    await c2.publishAsync('vcam/v1/agents/gw-2/events', payload('gw-2', [pev('gw-2', 2, { eventId: `${forbidden}-marker` })]), { qos: 1 });
    await c2.endAsync();
    await kc.waitFor(() => kc.events(TOPICS.events).some((m) => m.event.eventId === `${forbidden}-marker`), 30_000, 'the valid marker event');
    expect(kc.events(TOPICS.events).filter((m) => m.event.eventId === forbidden)).toHaveLength(0);
    expect(await metric(svc, 'vcam_bridge_publishes_total{result="refused"')).toMatch(/ 1$/);
  });

  it('closes the connection of a packet over the size limit without reading it whole', async () => {
    const svc = await bridge({ maxPacketBytes: 64 * 1024 });
    const c = await connect(svc.mqttPort, 'gw-1');
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('vcam/v1/agents/gw-1/events', Buffer.alloc(200 * 1024, 0x61), { qos: 1 });
    await closed;
    c.end(true);
    expect(await metric(svc, 'vcam_bridge_packets_too_large_total')).toMatch(/ 1$/);
  });

  it('drains in-flight publishes on shutdown: a PUBACK pending on Kafka is still sent, new connections are refused', async () => {
    const svc = await bridge();
    const kc = await consumer();
    const c = await connect(svc.mqttPort, 'gw-1');
    await kafka.kill();
    cleanups.push(() => kafka.start());
    const eventId = `drain-${Date.now()}`;
    const acked = c.publishAsync('vcam/v1/agents/gw-1/events', payload('gw-1', [pev('gw-1', 1, { eventId })]), { qos: 1 });
    await waitFor(() => svc.bridge.publishesInFlight === 1, 10_000, 'the publish pending at the bridge');
    const closing = svc.close();
    await new Promise((r) => setTimeout(r, 300));
    await expect(connect(svc.mqttPort, 'gw-2')).rejects.toThrow(/ECONNREFUSED/);
    await kafka.start();
    await acked;
    await closing;
    await kc.waitFor(() => kc.events(TOPICS.events).some((m) => m.event.eventId === eventId), 30_000, 'the drained event in Kafka');
    c.end(true);
  });

  it('serves agents over TLS: an agent trusting the CA delivers, one that does not is never connected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vcam-tls-'));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const svc = await bridge({ mqttTlsPort: 0, tlsCert: cert, tlsKey: key });
    const kc = await consumer();
    const tlsUrl = `mqtts://127.0.0.1:${svc.bridge.ports.mqtts}`;
    const agentOptions = { httpPort: 0, mqttUrl: tlsUrl, mqttUsername: 'gw-3', mqttPassword: secrets['gw-3'] };
    const untrusting = await startAgentService({ id: 'gw-3', dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-')), ...agentOptions });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(untrusting.agent.connected).toBe(false);
    await untrusting.close();

    const agent = await startAgentService({ id: 'gw-3', dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-')), ...agentOptions, mqttCa: cert });
    cleanups.push(() => agent.close());
    const r = await fetch(`http://127.0.0.1:${agent.port}/v1/events`, {
      method: 'POST',
      body: JSON.stringify({ eventId: `tls-${Date.now()}`, deviceId: 'cam-t', geoId: 1, ts: Date.now(), type: 'person' }),
      headers: { 'content-type': 'application/json' },
    });
    const [eventId] = ((await r.json()) as { eventIds: string[] }).eventIds;
    await kc.waitFor(() => kc.events(TOPICS.events).some((m) => m.event.eventId === eventId), 30_000, 'the event sent over TLS');
    expect(agent.agent.connected).toBe(true);
  });
});
