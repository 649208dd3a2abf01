import { describe, expect, it } from 'vitest';
import { checkCameraEvent, checkPipelineEvent, stableEventId, agentTopic, LIMITS } from './contract.js';

const now = Date.UTC(2026, 10, 25, 12, 0, 0);
const good = { deviceId: 'cam-1', geoId: 42, ts: now - 1000, type: 'person' };

describe('camera event contract', () => {
  it('accepts a minimal event and one with every optional field', () => {
    expect(checkCameraEvent(good, now)).toEqual({ ok: true, event: good });
    const full = { ...good, eventId: 'abc-1', confidence: 0.9, attrs: { color: 'red' } };
    expect(checkCameraEvent(full, now)).toEqual({ ok: true, event: full });
  });

  it('normalises an RFC 3339 ts to epoch milliseconds', () => {
    const r = checkCameraEvent({ ...good, ts: '2026-11-25T11:59:59.000Z' }, now);
    expect(r).toEqual({ ok: true, event: { ...good, ts: now - 1000 } });
    const offset = checkCameraEvent({ ...good, ts: '2026-11-25T13:59:59+02:00' }, now);
    expect(offset.ok && offset.event.ts).toBe(now - 1000);
  });

  it.each([
    [{ geoId: 1, ts: now, type: 'x' }, 'missing_field', /deviceId/],
    [{ ...good, geoId: '42' }, 'wrong_type', /geoId.*integer/],
    [{ ...good, geoId: -1 }, 'invalid_value', /geoId/],
    [{ ...good, geoId: 1.5 }, 'wrong_type', /geoId/],
    [{ ...good, deviceId: 'has space' }, 'invalid_value', /deviceId/],
    [{ ...good, deviceId: 'x'.repeat(65) }, 'invalid_value', /deviceId/],
    [{ ...good, eventId: 'y'.repeat(129) }, 'invalid_value', /eventId/],
    [{ ...good, confidence: 1.5 }, 'invalid_value', /confidence/],
    [{ ...good, geoID: 1 }, 'unknown_field', /geoID/],
    [{ ...good, ts: 1_700_000_000 }, 'invalid_ts', /seconds/],
    [{ ...good, ts: 'yesterday' }, 'invalid_ts', /RFC 3339/],
    // Date.parse would move these to another day (found by agent/fuzz.test.ts).
    [{ ...good, ts: '2026-02-30T10:00:00Z' }, 'invalid_ts', /not a valid date/],
    [{ ...good, ts: '2026-11-24T24:00:00Z' }, 'invalid_ts', /not a valid date/],
    [{ ...good, ts: '2026-11-25T10:00:00+24:30' }, 'invalid_ts', /not a valid date/],
    [{ ...good, ts: now + 10 * 60_000 }, 'future_ts', /future/],
    [{ ...good, attrs: { blob: 'z'.repeat(2000) } }, 'attrs_too_large', /attrs/],
    [[good], 'not_an_object', /object/],
    ['text', 'not_an_object', /object/],
    [null, 'not_an_object', /object/],
  ])('rejects %j as %s with a reason', (input, reason, message) => {
    const r = checkCameraEvent(input, now);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.message).toMatch(message);
    }
  });

  it('accepts an event exactly at the future tolerance and attrs exactly at the size limit', () => {
    expect(checkCameraEvent({ ...good, ts: now + LIMITS.maxFutureMs }, now).ok).toBe(true);
    const attrs = { a: 'x'.repeat(LIMITS.attrsBytes - 8) }; // {"a":"…"} is 8 bytes of syntax
    expect(Buffer.byteLength(JSON.stringify(attrs))).toBe(LIMITS.attrsBytes);
    expect(checkCameraEvent({ ...good, attrs }, now).ok).toBe(true);
  });
});

describe('stable event ids', () => {
  it('keeps the camera id, namespaced by device', () => {
    expect(stableEventId({ ...good, eventId: 'e1' })).toBe('cam-1:e1');
    expect(stableEventId({ ...good, deviceId: 'cam-2', eventId: 'e1' })).toBe('cam-2:e1');
  });

  it('derives the same id for the same (deviceId, geoId, ts, type), whatever the ts format', () => {
    const a = checkCameraEvent({ ...good, ts: now - 1000 }, now);
    const b = checkCameraEvent({ ...good, ts: '2026-11-25T11:59:59Z', confidence: 0.3 }, now);
    if (!a.ok || !b.ok) throw new Error('fixture invalid');
    expect(stableEventId(a.event)).toBe(stableEventId(b.event));
    expect(stableEventId(a.event)).toMatch(/^cam-1#[0-9a-f]{32}$/);
  });

  it('derives different ids when any identifying field differs', () => {
    const ids = new Set([good, { ...good, geoId: 43 }, { ...good, ts: good.ts + 1 }, { ...good, type: 'vehicle' }, { ...good, deviceId: 'cam-2' }].map((e) => stableEventId(e)));
    expect(ids.size).toBe(5);
  });
});

describe('pipeline event contract', () => {
  const pe = { eventId: 'cam-1:e1', ...good, agentId: 'gw-1', seq: 7, receivedAt: now };

  it('accepts what an agent sends and requires its envelope fields', () => {
    expect(checkPipelineEvent(pe, now)).toEqual({ ok: true, event: pe });
    const { seq: _seq, ...noSeq } = pe;
    const r = checkPipelineEvent(noSeq, now);
    expect(r.ok === false && r.reason).toBe('missing_field');
  });

  it('refuses seq and receivedAt that ClickHouse cannot store (found by processor/fuzz.test.ts: one stalled its partition)', () => {
    for (const bad of [{ seq: 2 ** 64 }, { seq: 1e300 }, { receivedAt: 0 }, { receivedAt: 12_345_678_901 }, { receivedAt: 1e20 }]) {
      const r = checkPipelineEvent({ ...pe, ...bad }, now);
      expect(r.ok === false && r.reason, JSON.stringify(bad)).toBe('invalid_value');
    }
    expect(checkPipelineEvent({ ...pe, seq: Number.MAX_SAFE_INTEGER, receivedAt: LIMITS.maxEpochMs }, now).ok).toBe(true);
  });

  it('refuses RFC 3339 ts after the agent (the agent normalises it)', () => {
    expect(checkPipelineEvent({ ...pe, ts: '2026-11-25T11:59:59Z' }, now).ok).toBe(false);
  });

  it('names the agent topic by contract version', () => {
    expect(agentTopic('gw-1')).toBe('vcam/v1/agents/gw-1/events');
  });
});
