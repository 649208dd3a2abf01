import { describe, expect, it } from 'vitest';
import { dedupMemory } from './memory.js';

describe('bench memory suite: dedup state', () => {
  it('measures the HotSet and its baseline from the same ids, with sane sizes (fingerprints in the HotSet, strings in the baseline)', () => {
    const r = dedupMemory(100_000) as {
      ids: number;
      avgIdChars: number;
      idStringBytesPerId: number;
      hotSet: { bytesPerId: number };
      baseline: { bytesPerId: number; structureBytesPerId: number };
      vsPlainSet: number;
    };
    expect(r.ids).toBe(100_000);
    expect(r.avgIdChars).toBe(42);
    // A 42-character one-byte string is at least its characters; a V8 header adds tens of bytes, not hundreds.
    expect(r.idStringBytesPerId).toBeGreaterThanOrEqual(42);
    expect(r.idStringBytesPerId).toBeLessThan(120);
    expect(r.baseline.structureBytesPerId).toBeGreaterThan(0);
    expect(r.baseline.bytesPerId).toBeCloseTo(r.idStringBytesPerId + r.baseline.structureBytesPerId, 0);
    // Fingerprints of 4 bytes in tables at most three quarters full, doubled as they grow: 4 to 11 bytes an id.
    expect(r.hotSet.bytesPerId).toBeGreaterThanOrEqual(4);
    expect(r.hotSet.bytesPerId).toBeLessThan(12);
    expect(r.vsPlainSet).toBeCloseTo(r.hotSet.bytesPerId / r.baseline.bytesPerId, 2);
  });
});
