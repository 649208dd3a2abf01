import { describe, expect, it } from 'vitest';
import { dedupMemory } from './memory.js';

describe('bench memory suite: dedup state', () => {
  it('measures the HotSet and its baseline from the same ids, with sane sizes', () => {
    const r = dedupMemory(20_000) as {
      ids: number;
      avgIdChars: number;
      idStringBytesPerId: number;
      hotSet: { bytesPerId: number; structureBytesPerId: number };
      baseline: { bytesPerId: number; structureBytesPerId: number };
      vsPlainSet: number;
    };
    expect(r.ids).toBe(20_000);
    expect(r.avgIdChars).toBe(42);
    // A 42-character one-byte string is at least its characters; a V8 header adds tens of bytes, not hundreds.
    expect(r.idStringBytesPerId).toBeGreaterThanOrEqual(42);
    expect(r.idStringBytesPerId).toBeLessThan(120);
    for (const s of [r.hotSet, r.baseline]) {
      expect(s.structureBytesPerId).toBeGreaterThan(0);
      expect(s.bytesPerId).toBeCloseTo(r.idStringBytesPerId + s.structureBytesPerId, 0);
    }
    expect(r.vsPlainSet).toBeGreaterThan(0.5);
    expect(r.vsPlainSet).toBeLessThan(2);
  });
});
