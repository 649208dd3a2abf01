import { describe, expect, it } from 'vitest';
import { Coalescer } from './coalesce.js';

function recorder(lingerMs: number, maxWeight = 100) {
  const writes: number[][] = [];
  const c = new Coalescer<number>(
    async (items) => void writes.push(items),
    () => 1,
    maxWeight,
    lingerMs,
  );
  return { c, writes };
}

describe('Coalescer', () => {
  it('without linger, the first item goes out alone and the rest wait for that write', async () => {
    const { c, writes } = recorder(0);
    await Promise.all([c.push(1), c.push(2), c.push(3)]);
    expect(writes).toEqual([[1], [2, 3]]);
  });

  it('with linger, items pushed within the linger time share one write', async () => {
    const { c, writes } = recorder(50);
    const sent = [c.push(1)];
    await new Promise((r) => setTimeout(r, 10));
    sent.push(c.push(2), c.push(3));
    await Promise.all(sent);
    expect(writes).toEqual([[1, 2, 3]]);
  });

  it('a write that is already full does not linger', async () => {
    const writes: number[][] = [];
    const c = new Coalescer<number>(
      async (items) => void writes.push(items),
      (n) => n,
      100,
      10_000,
    );
    const started = Date.now();
    await c.push(100);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(writes).toEqual([[100]]);
  });
});
