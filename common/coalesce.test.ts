import { describe, expect, it, vi } from 'vitest';
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

  it('paced: after a quiet spell an item goes at once; under load the next write waits for the pace and carries everything waiting, unless full', async () => {
    vi.useFakeTimers();
    try {
      const writes: { at: number; items: number[] }[] = [];
      const c = new Coalescer<number>(
        async (items) => void writes.push({ at: Date.now(), items }),
        (n) => n,
        10,
        0,
        500,
      );
      const t0 = Date.now();
      const first = c.push(1);
      await vi.advanceTimersByTimeAsync(0);
      expect(writes).toEqual([{ at: t0, items: [1] }]);
      await first;
      const next = [c.push(2), c.push(3)];
      await vi.advanceTimersByTimeAsync(499);
      expect(writes).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      await Promise.all(next);
      expect(writes[1]).toEqual({ at: t0 + 500, items: [2, 3] });
      // A full write does not wait for the pace.
      const full = c.push(10);
      await vi.advanceTimersByTimeAsync(0);
      await full;
      expect(writes[2]).toEqual({ at: t0 + 500, items: [10] });
      // After a quiet spell longer than the pace: at once.
      await vi.advanceTimersByTimeAsync(2_000);
      const late = c.push(4);
      await vi.advanceTimersByTimeAsync(0);
      await late;
      expect(writes[3]).toEqual({ at: t0 + 2_500, items: [4] });
    } finally {
      vi.useRealTimers();
    }
  });
});
