/**
 * Fuzz: MQTT publishes from several agents into a real bridge (aedes on loopback, mqtt.js
 * clients) that forwards to the local Apache Kafka broker. Each run publishes a few generated payloads at
 * once, waits for every PUBACK and checks the bridge's counters moved exactly as the payload
 * format and the event contract say (test/helpers/fuzz.ts); some runs instead misbehave at the
 * connection level (wrong topic, a packet over the size limit, a wrong secret) and must be
 * refused and counted without harm to the others. At the end, Kafka holds every valid event
 * exactly once, intact, and every refused payload or event exactly once in the dead-letter topic
 * with an allowed reason, and the dead-letter counts equal the bridge's counters.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentTopic } from '../common/contract.js';
import { TOPICS } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { consumeAll, keyedPartition, startTestKafka } from '../test/helpers/kafka.js';
import { eventArb, expectEvent, FUZZ_NOW, fuzzAssert, fuzzInputs, fuzzTimeout, isPlainObject, notJsonBytes, oddValue, parsesAsJson, Tally, type Reason } from '../test/helpers/fuzz.js';
import type { LocalKafka } from '../kafka/index.js';
import { addAgent, KafkaDownstream, startBridgeService, type BridgeService } from './index.js';

const INPUTS = fuzzInputs(1_000);
const MAX_PACKET = 256 * 1024;
// Dead letters are keyed by agent, so the agents spread them over partitions: the peer keeps only
// about 5 MiB per partition, and a long run writes more than 100,000 of them.
const AGENTS = Array.from({ length: 12 }, (_, i) => `gw-fuzz-${i}`);
/** Publishes per run, all at once: PUBACKs wait for Kafka, so runs are round trips and more per run go faster. */
const PER_RUN = 8;

let kafka: LocalKafka;
let svc: BridgeService;
const secrets = new Map<string, string>();
const clients = new Map<string, MqttClient>();
beforeAll(async () => {
  kafka = await startTestKafka(16);
  const agentsFile = join(mkdtempSync(join(tmpdir(), 'vcam-fuzz-')), 'agents.json');
  for (const a of AGENTS) secrets.set(a, await addAgent(agentsFile, a));
  const downstream = new KafkaDownstream({ brokers: kafka.brokers, clientId: 'fuzz-bridge', logger: silentLogger, idempotent: true, compression: 'gzip', sendRetries: 3, sendTimeoutMs: 10_000 });
  svc = await startBridgeService({ mqttPort: 0, agentsFile, downstream, maxPacketBytes: MAX_PACKET });
});
afterAll(async () => {
  for (const c of clients.values()) await c.endAsync(true).catch(() => undefined);
  await svc?.close();
  await kafka?.stop();
});

const connect = (agent: string, password = secrets.get(agent)!) => mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: agent, username: agent, password, reconnectPeriod: 0 });

// ---------------------------------------------------------------------------------------------
// Payloads.

/** Dead letters by their bytes (base64), or a digest of long ones; the consumer keeps this instead of the bytes. */
const valueKey = (b: Buffer) => (b.length > 1_024 ? `sha256:${createHash('sha256').update(b).digest('hex')}` : b.toString('base64'));

const ctxFor = (agentId: string) => ({ kind: 'pipeline', now: FUZZ_NOW, agentId }) as const;

/** A batch as an agent builds it, with at most its envelope bent: version, agent id, events. */
const batchArb = (agentId: string) =>
  fc
    .record({
      v: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: oddValue }),
      agentId: fc.oneof({ weight: 12, arbitrary: fc.constant<unknown>(agentId) }, { weight: 1, arbitrary: fc.constantFrom(...AGENTS) }, { weight: 1, arbitrary: oddValue }),
      events: fc.oneof({ weight: 12, arbitrary: fc.array(eventArb(ctxFor(agentId)), { maxLength: 8 }) }, { weight: 1, arbitrary: oddValue }),
      extra: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), oddValue, { minKeys: 1, maxKeys: 2 }) }),
    })
    .map(({ v, agentId: claimed, events, extra }) => Buffer.from(JSON.stringify({ ...extra, ...(v === undefined ? {} : { v }), agentId: claimed, events })));

type Publish = { agent: number; payload: Buffer };
// One arbitrary per agent, built once (building them per draw costs more than drawing).
const publishArb: fc.Arbitrary<Publish> = fc.oneof(
  ...AGENTS.map((agentId, agent) =>
    fc.record({
      agent: fc.constant(agent),
      payload: fc.oneof(
        { weight: 64, arbitrary: batchArb(agentId) },
        { weight: 8, arbitrary: notJsonBytes.map((b) => Buffer.from(b)) },
        { weight: 4, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
        // Near the packet limit: one large event the contract refuses.
        { weight: 1, arbitrary: fc.integer({ min: 100_000, max: MAX_PACKET - 4_096 }).map((n) => Buffer.from(JSON.stringify({ v: 1, agentId, events: [{ deviceId: 'd'.repeat(n) }] }))) },
        { weight: 4, arbitrary: fc.constantFrom('', ' ', '{}', '[]', '{"v":1}', 'null').map((s) => Buffer.from(s)) },
      ),
    }),
  ),
);

type Misbehaviour = { kind: 'topic'; agent: number; topic: string } | { kind: 'oversize'; agent: number; bytes: number } | { kind: 'password'; agent: number; password: string };
const misbehaviourArb: fc.Arbitrary<Misbehaviour> = fc.nat(AGENTS.length - 1).chain((agent) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .oneof(fc.constantFrom(agentTopic(AGENTS[(agent + 1) % AGENTS.length]!), `vcam/v2/agents/${AGENTS[agent]}/events`, `${agentTopic(AGENTS[agent]!)}/x`, 'a/b', '$SYS/x'), fc.string({ minLength: 1, maxLength: 40 }))
        // MQTT forbids NUL in a topic: such a publish never reaches the bridge's ACL.
        // eslint-disable-next-line no-control-regex
        .filter((t) => t !== agentTopic(AGENTS[agent]!) && !/[+#\u0000]/.test(t))
        .map((topic): Misbehaviour => ({ kind: 'topic', agent, topic })),
    },
    { weight: 1, arbitrary: fc.integer({ min: MAX_PACKET + 1, max: 2 * MAX_PACKET }).map((bytes): Misbehaviour => ({ kind: 'oversize', agent, bytes })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map((password): Misbehaviour => ({ kind: 'password', agent, password })) },
  ),
);

const runArb = fc.oneof(
  { weight: 30, arbitrary: fc.array(publishArb, { minLength: PER_RUN, maxLength: PER_RUN }).map((publishes) => ({ kind: 'publishes' as const, publishes })) },
  { weight: 1, arbitrary: misbehaviourArb.map((m) => ({ kind: 'misbehave' as const, m })) },
);

// ---------------------------------------------------------------------------------------------
// The payload format (bridge/payload.ts), as the oracle states it.

type Decision = { whole: Reason } | { events: { value: unknown; ok: true }[]; rejects: { value: unknown; reasons: Reason[] }[] };

function decide(payload: Buffer, agentId: string): Decision {
  const text = payload.toString('utf8');
  if (!parsesAsJson(text)) return { whole: 'invalid_json' };
  const batch: unknown = JSON.parse(text);
  if (!isPlainObject(batch)) return { whole: 'invalid_payload' };
  if (batch.v !== undefined && batch.v !== 1) return { whole: 'invalid_payload' };
  if (batch.agentId !== agentId) return { whole: 'agent_mismatch' };
  if (!Array.isArray(batch.events)) return { whole: 'invalid_payload' };
  const d = { events: [] as { value: unknown; ok: true }[], rejects: [] as { value: unknown; reasons: Reason[] }[] };
  for (const e of batch.events) {
    const o = expectEvent(e, ctxFor(agentId));
    if (o.ok) d.events.push({ value: e, ok: true });
    else d.rejects.push({ value: e, reasons: o.reasons });
  }
  return d;
}

async function counters(): Promise<{ rejected: Tally<string>; forwarded: number; publishes: Tally<string>; tooLarge: number; connections: Tally<string> }> {
  const read = async (name: string, label?: string) => {
    const t = new Tally<string>();
    for (const v of (await svc.registry.getSingleMetric(name)!.get()).values) t.add(label ? String(v.labels[label]) : 'all', v.value);
    return t;
  };
  return {
    rejected: await read('vcam_bridge_events_rejected_total', 'reason'),
    forwarded: (await read('vcam_bridge_events_forwarded_total')).total,
    publishes: await read('vcam_bridge_publishes_total', 'result'),
    tooLarge: (await read('vcam_bridge_packets_too_large_total')).total,
    connections: await read('vcam_bridge_connections_total', 'result'),
  };
}

const minus = (a: Tally<string>, b: Tally<string>) => {
  const d = new Tally<string>();
  for (const k of new Set([...a.counts.keys(), ...b.counts.keys()])) d.add(k, a.get(k) - b.get(k));
  return d;
};

/** Whether a tally of reasons can be the reasons of these rejects: each reject one of its allowed reasons. */
function explains(got: Tally<string>, rejects: { reasons: Reason[] }[]): boolean {
  if (got.total !== rejects.length) return false;
  const exact = new Tally<string>();
  const loose = new Tally<string>();
  for (const r of rejects) {
    if (r.reasons.length === 1) exact.add(r.reasons[0]!);
    else for (const reason of r.reasons) loose.add(reason);
  }
  return [...got.counts].every(([reason, n]) => n >= exact.get(reason) && n <= exact.get(reason) + loose.get(reason)) && [...exact.counts].every(([reason, n]) => got.get(reason) >= n);
}

describe('bridge fuzz', () => {
  it(`takes ${INPUTS}+ generated publishes from ${AGENTS.length} agents: valid events to Kafka once each, every refusal dead-lettered and counted`, { timeout: fuzzTimeout(INPUTS, 10, 120_000) }, async () => {
    // The consumer joins its group while the runs go on (it reads from the beginning).
    const joining = consumeAll(kafka.brokers, [TOPICS.events, TOPICS.dlq], (m) => (m.topic === TOPICS.dlq ? { ...m, value: Buffer.from(valueKey(m.value)) } : m));
    for (const a of AGENTS) clients.set(a, await connect(a));
    /** What Kafka must hold: valid events by agent, and refusals by agent and dead-letter value. */
    const validEvents: { agentId: string; value: unknown }[] = [];
    // The same bytes can be refused for different reasons (`{}` as a payload and as an event).
    const dead = new Map<string, { reasons: Reason[] }[]>();
    const expectDead = (agentId: string, value: Buffer, reasons: Reason[]) => {
      const key = `${agentId}\0${valueKey(value)}`;
      dead.set(key, [...(dead.get(key) ?? []), { reasons }]);
    };
    const runs = new Tally();
    let publishes = 0;

    await fuzzAssert(
      'bridge MQTT payloads',
      fc.asyncProperty(runArb, async (run) => {
        const before = await counters();
        if (run.kind === 'misbehave') {
          const m = run.m;
          const agent = AGENTS[m.agent]!;
          if (m.kind === 'password') {
            await expect(connect(agent, `${m.password}!wrong`)).rejects.toThrow();
            // Not `accepted`: a reconnect at the end of the run before may be counted after its CONNACK.
            const { accepted: _late, ...refused } = minus((await counters()).connections, before.connections).toJSON();
            expect(refused).toEqual({ bad_credentials: 1 });
          } else {
            // On a second connection of its own (the same client id takes the session over; the agent reconnects after).
            const c = await connect(agent);
            const closed = new Promise<void>((r) => c.once('close', () => r()));
            c.publish(m.kind === 'topic' ? m.topic : agentTopic(agent), m.kind === 'topic' ? 'x' : Buffer.alloc(m.bytes, 'x'), { qos: 1 });
            await closed;
            c.end(true);
            const after = await counters();
            if (m.kind === 'topic') expect(minus(after.publishes, before.publishes).toJSON()).toEqual({ refused: 1 });
            else expect(after.tooLarge - before.tooLarge).toBe(1);
            expect(after.forwarded).toBe(before.forwarded);
          }
          // The second connection took the agent's session over: the agent comes back, as a real one would.
          if (!clients.get(agent)!.connected) {
            clients.get(agent)!.end(true);
            clients.set(agent, await connect(agent));
          }
          runs.add(`refused ${m.kind}`);
          return;
        }
        const decisions = run.publishes.map((p) => ({ p, agentId: AGENTS[p.agent]!, d: decide(p.payload, AGENTS[p.agent]!) }));
        await Promise.all(run.publishes.map((p) => clients.get(AGENTS[p.agent]!)!.publishAsync(agentTopic(AGENTS[p.agent]!), p.payload, { qos: 1 })));
        publishes += run.publishes.length;
        const after = await counters();
        const rejects = decisions.flatMap(({ d }) => ('whole' in d ? [{ reasons: [d.whole] }] : d.rejects));
        const valid = decisions.reduce((n, { d }) => n + ('whole' in d ? 0 : d.events.length), 0);
        const delta = minus(after.rejected, before.rejected);
        expect(explains(delta, rejects), `reasons counted ${JSON.stringify(delta)} for ${JSON.stringify(rejects.map((r) => r.reasons))}`).toBe(true);
        expect(after.forwarded - before.forwarded).toBe(valid);
        expect(minus(after.publishes, before.publishes).toJSON()).toEqual({ acked: run.publishes.length });
        for (const { p, agentId, d } of decisions) {
          if ('whole' in d) expectDead(agentId, p.payload, [d.whole]);
          else {
            for (const e of d.events) validEvents.push({ agentId, value: e.value });
            for (const r of d.rejects) expectDead(agentId, Buffer.from(JSON.stringify(r.value) ?? 'null'), r.reasons);
          }
        }
        runs.add('publishes');
        // The consumer keeps up as it goes, so a failure is seen near the run that caused it.
        if (runs.get('publishes') % 50 === 0) {
          const c = await joining;
          const dlqSoFar = [...dead.values()].reduce((n, e) => n + e.length, 0);
          await c.waitFor(() => c.of(TOPICS.dlq).length >= dlqSoFar && c.events(TOPICS.events).length >= validEvents.length, 60_000, 'the consumer to catch up');
        }
      }),
      // One run in 31 misbehaves with a single publish: enough runs that the publishes reach INPUTS.
      { numRuns: Math.ceil((INPUTS / PER_RUN) * (31 / 30)), runTimeoutMs: 60_000, shrink: false },
    );

    const final = await counters();
    const consumer = await joining;
    const deadTotal = [...dead.values()].reduce((n, e) => n + e.length, 0);
    await consumer
      .waitFor(() => consumer.of(TOPICS.dlq).length >= deadTotal && consumer.events(TOPICS.events).length >= validEvents.length, 120_000 + INPUTS, `${deadTotal} dead letters and ${validEvents.length} events in Kafka`)
      .catch((err: Error) => Promise.reject(new Error(`${err.message}; read ${consumer.of(TOPICS.dlq).length} and ${consumer.events(TOPICS.events).length}`)));
    await new Promise((r) => setTimeout(r, 500));

    // Every valid event once, as it was sent, on its device's partition, under the agent that sent it.
    const events = consumer.events(TOPICS.events);
    expect(events).toHaveLength(validEvents.length);
    const sent = new Tally<string>();
    for (const e of validEvents) sent.add(`${e.agentId}\0${JSON.stringify(e.value)}`);
    const got = new Tally<string>();
    for (const m of events) {
      expect(m.partition).toBe(keyedPartition(m.event.deviceId, 16));
      got.add(`${m.event.agentId}\0${m.line}`);
    }
    expect(got.toJSON()).toEqual(sent.toJSON());

    // Every refusal once in the dead-letter topic, with its bytes, an allowed reason and a message.
    const dlq = consumer.of(TOPICS.dlq);
    expect(dlq).toHaveLength(deadTotal);
    const reasons = new Tally<string>();
    const seen = new Map<string, Tally<string>>();
    for (const m of dlq) {
      const key = `${m.headers.agentId}\0${m.value.toString('utf8')}`;
      expect(dead.has(key), `an unexpected dead letter from ${m.headers.agentId}: ${m.value.toString('utf8').slice(0, 300)}`).toBe(true);
      expect(m.headers.message).toMatch(/\S/);
      if (!seen.has(key)) seen.set(key, new Tally());
      seen.get(key)!.add(m.headers.reason!);
      reasons.add(m.headers.reason!);
    }
    for (const [key, want] of dead) {
      const got = seen.get(key) ?? new Tally<string>();
      expect(explains(got, want), `dead letters ${JSON.stringify(got)} for ${JSON.stringify(want)} of ${Buffer.from(key.split('\0')[1]!, 'base64').toString('utf8').slice(0, 200)}`).toBe(true);
    }
    expect(reasons.toJSON()).toEqual(final.rejected.toJSON());

    console.log(
      `[fuzz] bridge: ${publishes} publishes in ${JSON.stringify(runs)}; ${events.length} events forwarded; ${dlq.length} dead letters ${JSON.stringify(reasons)}; connections ${JSON.stringify(final.connections)}; packets too large ${final.tooLarge}`,
    );
    await consumer.stop();
  });
});
