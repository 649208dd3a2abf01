import { describe, expect, it } from 'vitest';
import { canonicalJson, whenQuiet } from './brokers.js';

describe('whenQuiet', () => {
  it('treats the same rows read back in another key order as unchanged (GROUP BY has no order)', async () => {
    let reads = 0;
    const read = () => (reads++ % 2 === 0 ? { a: 1, b: 2 } : { b: 2, a: 1 });
    expect(await whenQuiet(read, 200, 2_000)).toEqual({ a: 1, b: 2 });
  });

  it('keeps waiting while a value really changes, and says so', async () => {
    let n = 0;
    await expect(whenQuiet(() => ({ n: n++ }), 200, 500)).rejects.toThrow(/still changing after 500 ms/);
  });

  it('sorts keys at every depth but keeps array order', () => {
    expect(canonicalJson({ b: [2, 1], a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":[2,1]}');
  });
});
