import { describe, expect, it } from 'vitest';
import { backoffDelay, retry } from './retry.js';
import { VcamError } from './errors.js';

describe('retry', () => {
  it('grows the delay exponentially up to the cap, with jitter inside the configured share', () => {
    expect(backoffDelay(0, { initialMs: 100, jitter: 0 })).toBe(100);
    expect(backoffDelay(3, { initialMs: 100, jitter: 0 })).toBe(800);
    expect(backoffDelay(30, { initialMs: 100, maxMs: 5000, jitter: 0 })).toBe(5000);
    expect(backoffDelay(2, { initialMs: 100, jitter: 0.5 }, () => 0)).toBe(200);
    expect(backoffDelay(2, { initialMs: 100, jitter: 0.5 }, () => 1)).toBe(400);
  });

  it('retries retriable errors and stops at a non-retriable one', async () => {
    let calls = 0;
    const value = await retry(
      async () => {
        if (++calls < 3) throw new VcamError('CONNECTION', 'down', { retriable: true });
        return 'ok';
      },
      { initialMs: 1 },
    );
    expect([value, calls]).toEqual(['ok', 3]);

    calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new VcamError('CONFIG_INVALID', 'bad');
        },
        { initialMs: 1 },
      ),
    ).rejects.toThrow('bad');
    expect(calls).toBe(1);
  });

  it('gives up after the retry count', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('flaky');
        },
        { initialMs: 1, retries: 2 },
      ),
    ).rejects.toThrow('flaky');
    expect(calls).toBe(3);
  });
});
