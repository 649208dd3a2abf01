/** The ground truth is only worth trusting if a slow, independent recount agrees with it. */
import { describe, expect, it } from 'vitest';
import { decodePayload } from '../bridge/index.js';
import { checkCameraEvent, stableEventId } from '../common/contract.js';
import { Generator, type Send } from './generator.js';
import { simGeos } from './geos.js';
import { Ledger } from './ledger.js';
import { planBursts, SCENARIO_DEFAULTS, type Scenario } from './scenario.js';

function generate(s: Scenario, ticks: number, perTick: number, stepMs: number): { ledger: Ledger; sends: { send: Send; now: number }[] } {
  const ledger = new Ledger(s.seed);
  const geos = simGeos(s.geos, s.seed);
  const g = new Generator(s, geos, ['a-1', 'a-2', 'a-3'], 'a-legacy', ledger, 'run1');
  const sends: { send: Send; now: number }[] = [];
  let now = Date.UTC(2026, 10, 25, 12, 0, 0);
  for (let t = 0; t < ticks; t++, now += stepMs) {
    for (const send of g.next(now, perTick)) sends.push({ send, now });
    if (t % 10 === 0) for (const send of g.burst(now, geos[0]!.geoId, 5)) sends.push({ send, now });
  }
  return { ledger, sends };
}

/** The slow way: the agent's validation and id function over every send, and a set of ids. */
function recount(sends: { send: Send; now: number }[]) {
  const ids = new Set<string>();
  const perGeoMinute = new Map<string, number>();
  const perDevice = new Map<string, number>();
  let rejected = 0;
  let aheadOfClock = 0;
  for (const { send, now } of sends) {
    if (send.kind !== 'event' && send.kind !== 'bad-event') continue;
    const checked = checkCameraEvent(send.event, now);
    if (!checked.ok) {
      rejected++;
      continue;
    }
    if (checked.event.ts > now + 1_000) aheadOfClock++;
    const id = stableEventId(checked.event);
    if (ids.has(id)) continue;
    ids.add(id);
    const key = `${checked.event.geoId}@${Math.floor(checked.event.ts / 60_000) * 60}`;
    perGeoMinute.set(key, (perGeoMinute.get(key) ?? 0) + 1);
    perDevice.set(checked.event.deviceId, (perDevice.get(checked.event.deviceId) ?? 0) + 1);
  }
  return { ids, perGeoMinute, perDevice, rejected, aheadOfClock };
}

function expectLedgerMatches(ledger: Ledger, sends: { send: Send; now: number }[]) {
  const r = recount(sends);
  const fromLedger = new Map<string, number>();
  for (const [g, m] of ledger.perGeoMinute) for (const [minute, n] of m) fromLedger.set(`${g}@${minute}`, n);
  expect(ledger.unique).toBe(r.ids.size);
  expect(fromLedger).toEqual(r.perGeoMinute);
  expect(ledger.perDevice).toEqual(r.perDevice);
  expect(ledger.malformed.rejectedByAgent).toBe(r.rejected);
  expect(r.aheadOfClock).toBe(0);
}

describe('simulator ledger', () => {
  // 40 simulated minutes, so re-sends older than the 10-minute hot horizon happen too.
  const s: Scenario = { ...SCENARIO_DEFAULTS, seed: 7, cameras: 40, geos: 8, retryShare: 0.1, oldResendShare: 0.05 };
  const { ledger, sends } = generate(s, 2_400, 25, 1_000);

  it('counts exactly the distinct eventIds the agent derives, per geo per minute and per device', () => {
    expectLedgerMatches(ledger, sends);
  });

  it('stays exact when cameras send faster than their clocks tick (5,000 events/s from each of two cameras)', () => {
    const busy = generate({ ...s, cameras: 2, geos: 2, seed: 11 }, 1_500, 100, 20);
    expectLedgerMatches(busy.ledger, busy.sends);
    // The fast cameras had to stamp their own ids: far more id-carrying events than the usual ~40 % (30 % by choice, late and out of order).
    const withId = busy.sends.filter(({ send }) => send.kind === 'event' && (send.event as { eventId?: string }).eventId).length;
    expect(withId / busy.sends.length).toBeGreaterThan(0.5);
  });

  it('holds every kind of traffic the scenario asks for', () => {
    const sent = ledger.sent;
    expect(sent.total).toBe(sends.length);
    expect(sent.new + sent.retries + sent.oldResends + sent.malformed).toBe(sent.total);
    expect(sent.retries / sent.total).toBeGreaterThan(0.08);
    expect(sent.oldResends / sent.total).toBeGreaterThan(0.03);
    expect(sent.late / sent.new).toBeGreaterThan(0.03);
    expect(sent.outOfOrder / sent.new).toBeGreaterThan(0.03);
    expect(sent.burstExtra).toBe(240 * 5);
    // Zipf: the busiest geo carries several times the share of the quietest.
    const perGeo = [...ledger.perGeo().values()].sort((a, b) => b - a);
    expect(perGeo[0]! / perGeo[perGeo.length - 1]!).toBeGreaterThan(4);
  });

  it('re-sends events older than the hot horizon, with their original eventId', () => {
    const firstSeen = new Map<string, number>();
    let beyondHorizon = 0;
    for (const { send, now } of sends) {
      if (send.kind !== 'event') continue;
      const checked = checkCameraEvent(send.event, now);
      if (!checked.ok) continue;
      const id = stableEventId(checked.event);
      if (firstSeen.has(id) && checked.event.ts < now - s.hotHorizonMs) beyondHorizon++;
      else if (!firstSeen.has(id)) firstSeen.set(id, now);
    }
    expect(beyondHorizon).toBeGreaterThanOrEqual(ledger.sent.oldResends);
  });

  it('makes each malformed publish exactly one dead letter at the bridge', () => {
    const publishes = sends.flatMap(({ send, now }) => (send.kind === 'bad-publish' ? [{ payload: send.payload, now }] : []));
    const dead = publishes.reduce((n, p) => n + decodePayload(Buffer.from(p.payload), 'a-legacy', p.now).rejects.length, 0);
    const accepted = publishes.reduce((n, p) => n + decodePayload(Buffer.from(p.payload), 'a-legacy', p.now).events.length, 0);
    expect(publishes.length).toBeGreaterThan(50);
    expect(dead).toBe(ledger.malformed.deadLetters);
    expect(accepted).toBe(0);
  });

  it('is the same for the same seed, and survives a JSON round trip', () => {
    const again = generate(s, 2_400, 25, 1_000).ledger;
    expect(again.toJSON()).toEqual(ledger.toJSON());
    expect(Ledger.fromJSON(JSON.parse(JSON.stringify(ledger))).toJSON()).toEqual(ledger.toJSON());
  });

  it('plans minute-aligned bursts after the warm-up, within the run', () => {
    const start = Date.UTC(2026, 10, 25, 12, 0, 25);
    const bursts = planBursts({ ...s, durationMs: 10 * 60_000, bursts: -1 }, start, [100, 101]);
    expect(bursts.map((b) => [b.geoId, new Date(b.fromMs).toISOString().slice(11, 16)])).toEqual([
      [100, '12:04'],
      [101, '12:07'],
    ]);
    expect(planBursts({ ...s, durationMs: 60_000 }, start, [100])).toEqual([]);
  });
});
