import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../common/contract.js';
import { pipelineEvents, withDuplicates } from '../test/helpers/events.js';
import { eventArb, FUZZ_NOW, fuzzAssert, fuzzInputs, notJsonBytes } from '../test/helpers/fuzz.js';
import { HotSet } from './dedup.js';
import { coldCandidates, decodeChunk, eventsIn, hotAnswers, processChunk } from './pipeline.js';

const DAY = 86_400_000;
const options = { lateAfterMs: 30_000, maxAgeMs: 29 * DAY };

describe('decodeChunk', () => {
  const now = Date.now();
  const [fresh, old] = pipelineEvents(2, { now, spanMs: 1_000 });
  old!.ts = now - 30 * DAY;
  const asKafka = [fresh!, old!].map((e, i) => ({ offset: BigInt(i), timestamp: now, value: Buffer.from(JSON.stringify(e)) }));
  const handedOver = [fresh!, old!].map((event, i) => ({ offset: BigInt(i), timestamp: now, value: null, event }));

  it('decides an event handed over already parsed (single-node) as it decides the same event as Kafka bytes', () => {
    const fromBytes = decodeChunk(asKafka, options);
    const fromEvents = decodeChunk(handedOver, options);
    expect(fromEvents).toEqual(fromBytes);
    expect(fromEvents[0]!.event).toBe(fresh);
    expect(fromEvents[1]!.dead).toMatchObject({ reason: 'too_old', agent_id: 'gw-1', payload: JSON.stringify(old) });
  });
});

describe('ndjson messages (many events in one Kafka record)', () => {
  const now = Date.now();
  const events = pipelineEvents(3, { now, spanMs: 1_000 });
  const lines = events.map((e) => JSON.stringify(e));
  const bad = '{"eventId":"cut-off';

  it("decodes every line of a message whose format header says ndjson, each at the message's offset; a bad line is its own dead letter and an empty line is no event", () => {
    const value = Buffer.from([lines[0], bad, lines[1], '', lines[2], ''].join('\n'));
    const decoded = decodeChunk([{ offset: 7n, timestamp: now, value, ndjson: true }], options);
    expect(decoded.map((d) => d.event?.eventId ?? d.dead!.reason)).toEqual([events[0]!.eventId, 'invalid_json', events[1]!.eventId, events[2]!.eventId]);
    expect(decoded.every((d) => d.offset === 7n)).toBe(true);
    expect(decoded[1]!.dead).toMatchObject({ payload: bad, agent_id: '' });
    expect(eventsIn({ value, ndjson: true })).toBe(4);
  });

  it('keeps a message without the header one event, even with newlines in it (pretty-printed JSON)', () => {
    const value = Buffer.from(JSON.stringify(events[0], null, 2));
    const decoded = decodeChunk([{ offset: 1n, timestamp: now, value }], options);
    expect(decoded).toHaveLength(1);
    expect(decoded[0]!.event).toEqual(events[0]);
    expect(eventsIn({ value })).toBe(1);
  });

  it('decodes a record of any lines exactly as it decodes each line sent as a record of its own', async () => {
    const ctx = { kind: 'pipeline' as const, now: FUZZ_NOW, exactClock: true, tooOldBefore: FUZZ_NOW - options.maxAgeMs };
    // Lines as the bridge writes them (JSON.stringify has no raw newline), and any bytes without one.
    const line = fc.oneof(
      eventArb(ctx).map((v) => JSON.stringify(v) ?? 'null'),
      fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
      notJsonBytes.map((b) => Buffer.from(b).toString('utf8').replaceAll('\n', ' ')),
      fc.constant(''),
    );
    await fuzzAssert(
      'ndjson records',
      fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
        const record = decodeChunk([{ offset: 3n, timestamp: FUZZ_NOW, value: Buffer.from(lines.join('\n')), ndjson: true }], options);
        const alone = lines.filter((l) => l.length > 0).flatMap((l) => decodeChunk([{ offset: 3n, timestamp: FUZZ_NOW, value: Buffer.from(l) }], options));
        expect(record).toEqual(alone);
        expect(eventsIn({ value: Buffer.from(lines.join('\n')), ndjson: true })).toBe(alone.length);
      }),
      { numRuns: fuzzInputs(500) },
    );
  });
});

describe('the hot tier holds fingerprints: a hit it cannot settle is settled by the cold tier', () => {
  const now = Date.now();
  const [lately, earlier, other] = pipelineEvents(3, { now, spanMs: 1_000 });
  const hot = new HotSet(10 * 60_000);
  hot.add(lately!.eventId, lately!.ts);
  // Counted before this processor held the partition: its rebuild loads fingerprints only.
  hot.load(earlier!.eventId, earlier!.ts);
  const decoded = decodeChunk(
    [lately!, earlier!, other!].map((e, i) => ({ offset: BigInt(i), timestamp: now, value: Buffer.from(JSON.stringify(e)) })),
    options,
  );
  const geo = new Map([lately!, earlier!, other!].map((e) => [e.geoId, { name: 'g', region: 'r' }]));

  it('asks the cold tier about a hit on an id not counted lately, and about nothing else', () => {
    expect(coldCandidates(decoded, hotAnswers(decoded, hot)).map((e) => e.eventId)).toEqual([earlier!.eventId]);
  });

  it('drops such a hit as a duplicate only when the cold tier confirms it, and counts it otherwise (another id with the same fingerprint)', () => {
    const confirmed = processChunk(0, decoded, hotAnswers(decoded, hot), new Set([earlier!.eventId]), geo, options);
    expect([confirmed.events.map((e) => e.event_id), confirmed.duplicates]).toEqual([[other!.eventId], 2]);
    const collided = processChunk(0, decoded, hotAnswers(decoded, hot), new Set(), geo, options);
    expect([collided.events.map((e) => e.event_id), collided.duplicates]).toEqual([[earlier!.eventId, other!.eventId], 1]);
  });
});

describe('aggregates', () => {
  it('counts each distinct event once per 10-second geo bucket, per geo, type and minute, and per device, geo and minute; duplicates and late events where they belong', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0);
    // 240 events over 4 minutes: 7 devices over 3 geos, 2 types; every fifth re-sent; those of the first minute late.
    const events = pipelineEvents(240, { now, spanMs: 4 * 60_000, devices: 7, geos: 3 });
    const sent = withDuplicates(events, 5);
    const messages = sent.map((e, i) => ({ offset: BigInt(i), timestamp: now, value: Buffer.from(JSON.stringify(e)) }));
    const decoded = decodeChunk(messages, { ...options, lateAfterMs: 3 * 60_000 });
    const r = processChunk(0, decoded, hotAnswers(decoded, new HotSet(10 * 60_000)), new Set(), new Map(), { ...options, lateAfterMs: 3 * 60_000 });

    // The same counts, keyed naively by joined strings.
    const late = (e: PipelineEvent) => (now - e.ts > 3 * 60_000 ? 1 : 0);
    const expected = { geo10s: new Map<string, number[]>(), geoType1m: new Map<string, number[]>(), device1m: new Map<string, number[]>() };
    const add = (m: Map<string, number[]>, key: string, values: number[]) =>
      m.set(
        key,
        (m.get(key) ?? values.map(() => 0)).map((v, i) => v + values[i]!),
      );
    for (const e of events) {
      add(expected.geo10s, `${Math.floor(e.ts / 10_000) * 10}/${e.geoId}`, [1, late(e)]);
      add(expected.geoType1m, `${Math.floor(e.ts / 60_000) * 60}/${e.geoId}/${e.type}`, [1, late(e)]);
      add(expected.device1m, `${Math.floor(e.ts / 60_000) * 60}/${e.deviceId}/${e.geoId}`, [1, 0]);
    }
    for (let i = 0; i < events.length; i += 5) add(expected.device1m, `${Math.floor(events[i]!.ts / 60_000) * 60}/${events[i]!.deviceId}/${events[i]!.geoId}`, [0, 1]);

    expect(new Map(r.geo10s.map((g) => [`${g.bucket}/${g.geo_id}`, [g.events, g.late]]))).toEqual(expected.geo10s);
    expect(new Map(r.geoType1m.map((g) => [`${g.bucket}/${g.geo_id}/${g.type}`, [g.events, g.late]]))).toEqual(expected.geoType1m);
    expect(new Map(r.device1m.map((d) => [`${d.bucket}/${d.device_id}/${d.geo_id}`, [d.events, d.duplicates]]))).toEqual(expected.device1m);
    // One row per key.
    expect([r.geo10s.length, r.geoType1m.length, r.device1m.length]).toEqual([expected.geo10s.size, expected.geoType1m.size, expected.device1m.size]);
    expect([r.events.length, r.duplicates, r.late]).toEqual([240, 48, 60]);
  });
});
