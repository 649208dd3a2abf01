/** Seeded randomness: the same seed gives the same events, bursts and faults, run after run. */
export type Rng = () => number;

/** mulberry32: small, fast, and good enough for load generation (not for secrets). */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ranks 0..n-1 drawn with probability ∝ 1/(rank+1)^s: a few geos and cameras carry most events. */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    this.cdf = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) this.cdf[i] = total += 1 / (i + 1) ** s;
    for (let i = 0; i < n; i++) this.cdf[i]! /= total;
  }

  /** Probability of rank i. */
  weight(i: number): number {
    return this.cdf[i]! - (i > 0 ? this.cdf[i - 1]! : 0);
  }

  sample(rng: Rng): number {
    const u = rng();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export function pick<T>(items: readonly T[], rng: Rng): T {
  return items[Math.floor(rng() * items.length)]!;
}
