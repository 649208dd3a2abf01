/** Timing helpers for benchmarks: warm up, then run for a fixed time and report a rate. */
export function opsPerSecond(fn: () => unknown, ms = 500): number {
  for (let i = 0; i < 10_000; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

export const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
