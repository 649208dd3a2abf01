/**
 * Fuzz: Kafka messages into a real processor (local Apache Kafka → processor → embedded ClickHouse).
 * Each run is a round of generated messages on `vcam.events` and on the bridge's dead-letter
 * topic: events valid, broken or resent, bytes that are not JSON, tombstones, JSON of any shape,
 * values up to the 1 MiB a Kafka broker takes by default, garbage keys and headers. The round is
 * produced with known partitions and offsets; once the processor has committed all of it, each
 * message is looked up by (partition, offset): a valid event counted in vcam.events exactly once
 * (its first copy in the partition), a copy dropped as a duplicate, everything else one row in
 * vcam.dlq with an allowed reason and its payload; and the processor's counters moved by exactly
 * as much. A processor that stops committing (a poison message it retries forever) fails the
 * round as a hang, naming the partition.
 *
 * Duplicates are per partition: the bridge keys events by deviceId and eventIds are namespaced by
 * device, so every copy of an event lands where its first copy did. The generator keeps to that.
 */
import { Kafka, logLevel, type Producer } from 'kafkajs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETENTION } from '../clickhouse/schema.js';
import { LIMITS } from '../common/contract.js';
import { TOPICS } from '../common/kafka.js';
import { eventArb, expectEvent, FUZZ_NOW, fuzzAssert, fuzzInputs, fuzzTimeout, notJsonBytes, parsesAsJson, Tally, validEvent, type Reason } from '../test/helpers/fuzz.js';
import { startTestProcessor, useKafkaAndClickHouse } from '../test/helpers/stack.js';
import { pipelineOptions } from './processor.js';
import type { ProcessorService } from './service.js';

const INPUTS = fuzzInputs(500);
const PARTITIONS = 16;
/** Messages per round: a few rounds in `npm test`, rounds of 5,000 in the long run. */
const ROUND = Math.min(5_000, Math.max(250, Math.ceil(INPUTS / 4)));
const HUGE_MAX = 1_048_576 - 4_096;
const GROUP = 'fuzz-processor';
const STALL_MS = 60_000;

const env = useKafkaAndClickHouse(PARTITIONS);
let svc: ProcessorService;
let producer: Producer;
let kafka: Kafka;
beforeAll(async () => {
  kafka = new Kafka({ clientId: 'fuzz-producer', brokers: env.kafka.brokers, logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 } });
  producer = kafka.producer();
  await producer.connect();
  svc = await startTestProcessor(env, {
    clientId: 'fuzz-processor',
    group: GROUP,
    // The embedded ClickHouse and the test's own checks share this process, so a long session
    // keeps a busy event loop in the group.
    sessionTimeoutMs: 30_000,
  });
});
afterAll(async () => {
  await producer?.disconnect();
  await svc?.close();
});

// ---------------------------------------------------------------------------------------------
// Messages.

/** The message time, which is the processor's "now" for every decision about a message. */
const MSG_TS = FUZZ_NOW;
const MAX_AGE_MS = pipelineOptions({ lateAfterMs: 0, rawRetentionDays: DEFAULT_RETENTION.rawDays }).maxAgeMs;
const ctxAt = (now: number) => ({ kind: 'pipeline', now, exactClock: true, tooOldBefore: now - MAX_AGE_MS }) as const;
const CTX = ctxAt(MSG_TS);
/**
 * Kafka takes almost any timestamp from a producer: now and then one that is no time at all. Not
 * one more than an hour ahead of the broker's clock: Kafka 4 refuses those
 * (log.message.timestamp.after.max.ms), so no processor meets them.
 */
const timeArb = fc.oneof({ weight: 40, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 1e9, 1e11, LIMITS.minTs - 1, MSG_TS - 40 * 86_400_000, MSG_TS + 59 * 60_000) });

const headerValue = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b)),
  fc.constantFrom('', '1e300', '-5', 'NaN', '99999999999999999999', String(MSG_TS), '\u0000'),
);
const headersArb = fc.option(fc.dictionary(fc.oneof(fc.constantFrom('eventId', 'agentId', 'reason', 'message', 'receivedAt', 'mqttTopic'), fc.string({ minLength: 1, maxLength: 10 })), headerValue, { maxKeys: 5 }), { nil: undefined });
const keyArb = fc.option(
  fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
  ),
  { nil: null },
);

type Gen =
  | { to: 'events'; kind: 'value'; value: unknown; headers?: Record<string, string | Buffer>; key: string | Buffer | null; partition: number; time?: number }
  | { to: 'events'; kind: 'resend'; pick: number; headers?: Record<string, string | Buffer> }
  | { to: 'events'; kind: 'bytes'; bytes: Uint8Array | null; headers?: Record<string, string | Buffer>; key: string | Buffer | null; partition: number; time?: number }
  | { to: 'events'; kind: 'huge'; size: number; fill: 'x' | 'event' | 'random'; partition: number }
  | { to: 'dlq'; value: Uint8Array | null; headers?: Record<string, string | Buffer>; key: string | Buffer | null; partition: number; time?: number };

const partitionArb = fc.nat(PARTITIONS - 1);
const genArb: fc.Arbitrary<Gen> = fc.oneof(
  { weight: 60, arbitrary: fc.record({ to: fc.constant('events' as const), kind: fc.constant('value' as const), value: eventArb(CTX), headers: headersArb, key: keyArb, partition: partitionArb, time: timeArb }) },
  { weight: 8, arbitrary: fc.record({ to: fc.constant('events' as const), kind: fc.constant('resend' as const), pick: fc.nat(), headers: headersArb }) },
  {
    weight: 6,
    arbitrary: fc.record({ to: fc.constant('events' as const), kind: fc.constant('bytes' as const), bytes: fc.option(notJsonBytes, { nil: null, freq: 8 }), headers: headersArb, key: keyArb, partition: partitionArb, time: timeArb }),
  },
  { weight: 4, arbitrary: fc.record({ to: fc.constant('events' as const), kind: fc.constant('value' as const), value: fc.jsonValue(), headers: headersArb, key: keyArb, partition: partitionArb, time: timeArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      to: fc.constant('events' as const),
      kind: fc.constant('huge' as const),
      size: fc.integer({ min: 64 * 1024, max: HUGE_MAX }),
      fill: fc.constantFrom('x' as const, 'event' as const, 'random' as const),
      partition: partitionArb,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      to: fc.constant('dlq' as const),
      value: fc.option(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.jsonValue().map((v) => new Uint8Array(Buffer.from(JSON.stringify(v) ?? ''))),
        ),
        { nil: null, freq: 10 },
      ),
      headers: headersArb,
      key: keyArb,
      partition: partitionArb,
      time: timeArb,
    }),
  },
);

/** As the bridge would place it: by device, so that every copy of an event shares a partition. */
function partitionOf(deviceId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) h = Math.imul(h ^ deviceId.charCodeAt(i), 0x01000193) >>> 0;
  return h % PARTITIONS;
}

const hugeEvent = fc.sample(validEvent(CTX), { numRuns: 1, seed: 1 })[0]!;

// ---------------------------------------------------------------------------------------------
// The oracle.

type Fate =
  | { fate: 'counted'; eventId: string; row: Record<string, unknown> }
  | { fate: 'duplicate'; eventId: string }
  | { fate: 'dead'; reasons: (Reason | 'too_old')[]; payload: string; receivedAt: When }
  | { fate: 'copied'; reason: string; agentId: string; message: string; payload: string; receivedAt: When };
/** A dead letter's received_at: the time the message states, or (when that is no usable time) the time it was processed. */
type When = number | 'processing';

interface Planned {
  topic: string;
  partition: number;
  message: { key: string | Buffer | null; value: Buffer | null; headers?: Record<string, string | Buffer>; timestamp: string; partition: number };
  fate: Fate;
}

const text = (b: Buffer | string | undefined | null) => (b === undefined || b === null ? '' : Buffer.isBuffer(b) ? b.toString('utf8') : b);
/**
 * Dead letters are kept for the raw retention from their received_at, so a stated time older
 * than that (or none that ClickHouse can hold) must not date them: they are dated when processed.
 */
const when = (ms: number): When => (Number.isFinite(ms) && ms >= Date.now() - MAX_AGE_MS && ms <= LIMITS.maxEpochMs ? ms : 'processing');
/** The bridge's receivedAt header when it is a positive integer, else the message time. */
const statedTime = (h: string, time: number) => (Number.isSafeInteger(Number(h)) && Number(h) > 0 ? Number(h) : time);

describe('processor Kafka fuzz', () => {
  it(`processes ${INPUTS}+ generated Kafka messages: every valid event counted once, every other message dead-lettered once with its reason`, { timeout: fuzzTimeout(INPUTS, 30, 180_000) }, async () => {
    /** First copy of each (partition, eventId) counted so far, with the text it was sent as. */
    const counted = new Map<string, { partition: number; text: string }>();
    const countedList: string[] = [];
    const totals = { counted: 0, duplicates: 0, messages: 0, dlqTopic: 0, rounds: 0, hugeBytes: 0, redone: 0 };
    const dead = new Tally<string>();
    const admin = kafka.admin();
    await admin.connect();

    const metric = async (name: string, label?: string) => {
      const t = new Tally<string>();
      for (const v of (await svc.registry.getSingleMetric(name)!.get()).values) t.add(label ? String(v.labels[label]) : 'all', v.value);
      return t;
    };

    const plan = (gens: Gen[]): Planned[] => {
      const bytesIn = new Array<number>(PARTITIONS).fill(0);
      return gens.map((g): Planned => {
        const time = ('time' in g ? g.time : undefined) ?? MSG_TS;
        const timestamp = String(time);
        if (g.to === 'dlq') {
          const value = g.value === null ? null : Buffer.from(g.value);
          const h = (name: string) => text(g.headers?.[name]);
          return {
            topic: TOPICS.dlq,
            partition: g.partition,
            message: { key: g.key, value, headers: g.headers, timestamp, partition: g.partition },
            // A message that reached the dead-letter topic without the bridge's headers is still a dead letter.
            fate: { fate: 'copied', reason: h('reason') || 'unknown', agentId: h('agentId'), message: h('message'), payload: text(value), receivedAt: when(statedTime(h('receivedAt'), time)) },
          };
        }
        let value: Buffer | null;
        let partition: number;
        let key: string | Buffer | null = null;
        let headers = 'headers' in g ? g.headers : undefined;
        if (g.kind === 'resend') {
          const first = countedList.length ? counted.get(countedList[g.pick % countedList.length]!)! : undefined;
          value = Buffer.from(first?.text ?? '{}');
          partition = first?.partition ?? 0;
        } else if (g.kind === 'huge') {
          const fill = g.fill === 'x' ? 'x'.repeat(g.size) : g.fill === 'event' ? JSON.stringify({ ...hugeEvent, attrs: { blob: 'z'.repeat(g.size) } }) : null;
          value = fill === null ? Buffer.from(Array.from({ length: g.size }, (_, i) => (i * 7919 + g.size) % 251)) : Buffer.from(fill);
          // Spread over the partitions, so no one partition's fetch is all huge messages.
          partition = bytesIn.indexOf(Math.min(...bytesIn));
          totals.hugeBytes += value.length;
        } else if (g.kind === 'bytes') {
          value = g.bytes === null ? null : Buffer.from(g.bytes);
          partition = g.partition;
          key = g.key;
        } else {
          value = Buffer.from(JSON.stringify(g.value) ?? 'null');
          partition = g.partition;
          key = g.key;
        }
        const t = text(value);
        let fate: Fate;
        if (!parsesAsJson(t)) fate = { fate: 'dead', reasons: ['invalid_json'], payload: t, receivedAt: when(time) };
        else {
          const parsed: unknown = JSON.parse(t);
          const o = expectEvent(parsed, ctxAt(time));
          if (!o.ok) fate = { fate: 'dead', reasons: o.reasons, payload: t, receivedAt: when(time) };
          else {
            const e = parsed as { eventId: string; deviceId: string; ts: number; geoId: number; type: string; agentId: string; seq: number; receivedAt: number };
            if (g.kind === 'value') {
              partition = partitionOf(e.deviceId);
              key = e.deviceId;
            }
            const id = `${partition}\0${e.eventId}`;
            const first = counted.get(id);
            if (first && JSON.parse(first.text).ts !== e.ts) {
              // One eventId is one event: a generated event that reuses an id becomes a resend of it.
              value = Buffer.from(first.text);
            }
            if (first) fate = { fate: 'duplicate', eventId: e.eventId };
            else {
              counted.set(id, { partition, text: t });
              countedList.push(id);
              fate = { fate: 'counted', eventId: e.eventId, row: { event_id: e.eventId, device_id: e.deviceId, geo_id: e.geoId, ts: String(e.ts), type: e.type, agent_id: e.agentId, seq: String(e.seq), received_at: String(e.receivedAt) } };
            }
          }
        }
        if (headers && g.kind !== 'huge') headers = { ...headers };
        bytesIn[partition] += value?.length ?? 0;
        return { topic: TOPICS.events, partition, message: { key, value, headers, timestamp, partition }, fate };
      });
    };

    const committed = async (groupId: string, topic: string) => {
      const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map(t!.partitions.map((p) => [p.partition, BigInt(p.offset)]));
    };

    await fuzzAssert(
      'processor Kafka messages',
      fc.asyncProperty(fc.array(genArb, { minLength: ROUND, maxLength: ROUND }), async (gens) => {
        const counters = async () => ({
          counted: await metric('vcam_processor_events_counted_total'),
          duplicates: await metric('vcam_processor_duplicates_dropped_total'),
          dead: await metric('vcam_processor_dead_letters_total', 'reason'),
          redone: (await metric('vcam_processor_chunks_total', 'kind')).get('redo'),
        });
        const before = await counters();
        const started = Date.now();
        const expectWhen = (got: string, want: When, what: string) => {
          if (want === 'processing') expect(Number(got), `${what}: dated when processed`).toSatisfy((t: number) => t >= started && t <= Date.now());
          else expect(Number(got), what).toBe(want);
        };
        const planned = plan(gens);
        // Produced in slices, in order: each slice's offsets per partition follow from its base offsets.
        const at = new Map<Planned, bigint>();
        for (const topic of [TOPICS.events, TOPICS.dlq]) {
          const mine = planned.filter((p) => p.topic === topic);
          for (let i = 0; i < mine.length; i += 500) {
            const slice = mine.slice(i, i + 500);
            const meta = await producer.send({ topic, acks: -1, messages: slice.map((p) => p.message) });
            const base = new Map(meta.map((m) => [m.partition, BigInt(m.baseOffset!)]));
            const next = new Map<number, bigint>();
            for (const p of slice) {
              const o = next.get(p.partition) ?? base.get(p.partition)!;
              at.set(p, o);
              next.set(p.partition, o + 1n);
            }
          }
        }
        const ends = (topic: string) => {
          const m = new Map<number, bigint>();
          for (const [p, o] of at) if (p.topic === topic && o + 1n > (m.get(p.partition) ?? 0n)) m.set(p.partition, o + 1n);
          return m;
        };
        // No hang: the processor and the dead-letter copier commit past everything of this round.
        // A hang is no progress for STALL_MS; a slow machine only makes the round longer.
        for (const [groupId, topic] of [
          [GROUP, TOPICS.events],
          [`${GROUP}.dlq`, TOPICS.dlq],
        ] as const) {
          const want = ends(topic);
          let last = new Map<number, bigint>();
          let progressAt = Date.now();
          const show = (m: Map<number, bigint>) => JSON.stringify(Object.fromEntries([...m].map(([p, e]) => [p, String(e)])));
          for (;;) {
            const now = await committed(groupId, topic);
            if ([...want].every(([p, end]) => (now.get(p) ?? -1n) >= end)) break;
            if ([...now].some(([p, o]) => o > (last.get(p) ?? -1n))) progressAt = Date.now();
            last = now;
            if (Date.now() - progressAt > STALL_MS) {
              // The chunk that does not finish starts at the committed offset: show what it holds.
              const stuck = planned.filter((p) => p.topic === topic && at.get(p)! >= (last.get(p.partition) ?? 0n) && at.get(p)! < (want.get(p.partition) ?? 0n));
              const first = stuck.slice(0, 5).map((p) => `  partition ${p.partition} offset ${at.get(p)} (${p.fate.fate}): ${text(p.message.value).slice(0, 300)}`);
              throw new Error(`no progress (a hang) for ${STALL_MS / 1000} s: ${groupId} committed ${topic} at ${show(last)}, the round ends at ${show(want)}; ${stuck.length} messages not committed, the first:\n${first.join('\n')}`);
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        }

        // Each message by its place in Kafka.
        const ranges = (topic: string) => {
          const lo = new Map<number, bigint>();
          for (const [p, o] of at) if (p.topic === topic && o < (lo.get(p.partition) ?? o + 1n)) lo.set(p.partition, o);
          return [...ends(topic)].map(([p, end]) => `(kafka_partition = ${p} AND kafka_offset >= ${lo.get(p)} AND kafka_offset < ${end})`).join(' OR ') || '0';
        };
        const rows = await env.ch.query<{ p: number; o: string; event_id: string }>(
          `SELECT kafka_partition AS p, toString(kafka_offset) AS o, event_id, device_id, geo_id, toString(toUnixTimestamp64Milli(ts)) AS ts, type, agent_id, toString(agent_seq) AS seq, toString(toUnixTimestamp64Milli(received_at)) AS received_at FROM vcam.events WHERE ${ranges(TOPICS.events)}`,
        );
        const deadRows = await env.ch.query<{ topic: string; p: number; o: string; reason: string; agent_id: string; message: string; payload: string; received_at: string }>(
          `SELECT topic, kafka_partition AS p, toString(kafka_offset) AS o, reason, agent_id, message, payload, toString(toUnixTimestamp64Milli(received_at)) AS received_at FROM vcam.dlq WHERE (topic = '' AND (${ranges(TOPICS.events)})) OR (topic = '${TOPICS.dlq}' AND (${ranges(TOPICS.dlq)}))`,
        );
        const byPlace = new Map<string, { events: typeof rows; dead: typeof deadRows }>();
        const slot = (topic: string, p: number, o: string) => {
          const k = `${topic}\0${p}\0${o}`;
          if (!byPlace.has(k)) byPlace.set(k, { events: [], dead: [] });
          return byPlace.get(k)!;
        };
        for (const r of rows) slot(TOPICS.events, Number(r.p), r.o).events.push(r);
        for (const r of deadRows) slot(r.topic === '' ? TOPICS.events : r.topic, Number(r.p), r.o).dead.push(r);

        let roundCounted = 0;
        let roundDuplicates = 0;
        const roundDead = new Tally<string>();
        for (const p of planned) {
          const place = `${p.topic} partition ${p.partition} offset ${at.get(p)}`;
          const found = byPlace.get(`${p.topic}\0${p.partition}\0${at.get(p)}`) ?? { events: [], dead: [] };
          const f = p.fate;
          const what = `${place} (${f.fate}): ${text(p.message.value).slice(0, 200)}`;
          if (f.fate === 'counted') {
            expect(
              found.events.map(({ p: _p, o: _o, ...r }) => r),
              what,
            ).toEqual([f.row]);
            expect(found.dead, what).toEqual([]);
            roundCounted++;
          } else if (f.fate === 'duplicate') {
            expect(found.events, what).toEqual([]);
            expect(found.dead, what).toEqual([]);
            roundDuplicates++;
          } else if (f.fate === 'dead') {
            expect(found.events, what).toEqual([]);
            expect(found.dead, what).toHaveLength(1);
            expect(f.reasons, what).toContain(found.dead[0]!.reason);
            expect(found.dead[0]!.payload === f.payload, `${what}: the dead letter keeps the message`).toBe(true);
            expect(found.dead[0]!.message, what).toMatch(/\S/);
            expectWhen(found.dead[0]!.received_at, f.receivedAt, what);
            roundDead.add(found.dead[0]!.reason);
          } else {
            expect(found.dead, what).toHaveLength(1);
            const r = found.dead[0]!;
            expect({ reason: r.reason, agent_id: r.agent_id, message: r.message }, what).toEqual({ reason: f.reason, agent_id: f.agentId, message: f.message });
            expectWhen(r.received_at, f.receivedAt, what);
            expect(r.payload === f.payload, `${what}: the copy keeps the message`).toBe(true);
            totals.dlqTopic++;
          }
        }
        // The processor's counters moved by exactly what ClickHouse shows.
        const after = await counters();
        const deadDelta = new Tally<string>();
        for (const k of after.dead.counts.keys()) deadDelta.add(k, after.dead.get(k) - before.dead.get(k));
        if (after.redone === before.redone) {
          expect(after.counted.total - before.counted.total, 'events counted').toBe(roundCounted);
          expect(after.duplicates.total - before.duplicates.total, 'duplicates dropped').toBe(roundDuplicates);
          expect(deadDelta.toJSON(), 'dead letters by reason').toEqual(roundDead.toJSON());
        } else {
          // A chunk redone after a rebalance is counted again by the process (ClickHouse keeps one copy, checked above).
          totals.redone += after.redone - before.redone;
          expect(after.counted.total - before.counted.total, 'events counted').toBeGreaterThanOrEqual(roundCounted);
          for (const [k, n] of roundDead.counts) expect(deadDelta.get(k), `dead letters ${k}`).toBeGreaterThanOrEqual(n);
        }
        totals.counted += roundCounted;
        totals.duplicates += roundDuplicates;
        totals.messages += planned.length;
        totals.rounds++;
        for (const [k, n] of roundDead.counts) dead.add(k, n);
      }),
      { numRuns: Math.max(2, Math.ceil(INPUTS / ROUND)), runTimeoutMs: 900_000, shrink: false, counterexampleChars: 300 },
    );
    await admin.disconnect();

    // Over all rounds: each distinct event once, in the raw table and in every aggregate.
    const [raw] = await env.ch.query<{ n: string; d: string }>('SELECT count() AS n, uniqExact(kafka_partition, event_id) AS d FROM vcam.events');
    expect({ n: Number(raw!.n), d: Number(raw!.d) }).toEqual({ n: totals.counted, d: totals.counted });
    for (const table of ['vcam.geo_10s', 'vcam.geo_type_1m', 'vcam.device_1m']) {
      const [s] = await env.ch.query<{ n: string }>(`SELECT sum(events) AS n FROM ${table}`);
      expect(Number(s!.n), table).toBe(totals.counted);
    }
    const [dups] = await env.ch.query<{ n: string }>('SELECT sum(duplicates) AS n FROM vcam.device_1m');
    expect(Number(dups!.n)).toBe(totals.duplicates);
    const [dl] = await env.ch.query<{ own: string; copied: string }>(`SELECT countIf(topic = '') AS own, countIf(topic = '${TOPICS.dlq}') AS copied FROM vcam.dlq`);
    expect({ own: Number(dl!.own), copied: Number(dl!.copied) }).toEqual({ own: dead.total, copied: totals.dlqTopic });
    console.log(
      `[fuzz] processor: ${totals.messages} messages in ${totals.rounds} rounds of ${ROUND} (${(totals.hugeBytes / 1e6).toFixed(1)} MB in huge values); ${totals.counted} events counted, ${totals.duplicates} duplicates dropped; dead letters ${JSON.stringify(dead)}; ${totals.dlqTopic} bridge dead letters copied; ${totals.redone} chunks redone after a rebalance`,
    );
  });
});
