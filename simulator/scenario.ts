/**
 * What the simulator generates: every knob of `vcam sim` with its default, the rate over time
 * (steady, a schedule, or a daily curve) and the plan of injected bursts.
 */
export interface Scenario {
  seed: number;
  /** Camera sends per second (new events, retries, re-sends and malformed ones together). */
  rate: number;
  durationMs: number;
  /** Rate steps from the start of the run: at `atMs` the rate becomes `rate`. Overrides `rate`. */
  schedule: { atMs: number; rate: number }[];
  /** 0..1: the rate follows the time of day, ±amplitude around `rate`, highest at 15:00 UTC. */
  dailyAmplitude: number;
  agents: number;
  cameras: number;
  geos: number;
  /** Zipf exponent over geos and over the cameras of a geo. */
  zipf: number;
  /** Share of sends that repeat a recent event (a camera's retry). */
  retryShare: number;
  /** Share of sends that repeat an event older than the processor's hot horizon (a very late re-send). */
  oldResendShare: number;
  lateShare: number;
  /** Late events are this far behind (uniform between 35 s and this). */
  lateMaxMs: number;
  outOfOrderShare: number;
  outOfOrderMaxMs: number;
  malformedShare: number;
  /** How many bursts to inject (-1: one every `burstEveryMs` after the warm-up, as the run allows). */
  bursts: number;
  /** During a burst, the geo's rate is multiplied by this. */
  burstFactor: number;
  burstWarmupMs: number;
  burstEveryMs: number;
  /** The processor's hot dedup horizon: what "older than the horizon" means for re-sends. */
  hotHorizonMs: number;
}

export const SCENARIO_DEFAULTS: Scenario = {
  seed: 1,
  rate: 10_000,
  durationMs: 60_000,
  schedule: [],
  dailyAmplitude: 0,
  agents: 4,
  cameras: 1_000,
  geos: 50,
  zipf: 1.1,
  retryShare: 0.05,
  oldResendShare: 0.01,
  lateShare: 0.05,
  lateMaxMs: 20 * 60_000,
  outOfOrderShare: 0.05,
  outOfOrderMaxMs: 5_000,
  malformedShare: 0.01,
  bursts: -1,
  burstFactor: 5,
  burstWarmupMs: 3 * 60_000,
  burstEveryMs: 3 * 60_000,
  hotHorizonMs: 10 * 60_000,
};

export const LATE_MIN_MS = 35_000;
const DAY_MS = 86_400_000;
const PEAK_MS = 15 * 3_600_000;

/** Sends per second at wall time `now`, `elapsedMs` into the run. */
export function rateAt(s: Scenario, elapsedMs: number, now: number): number {
  let rate = s.rate;
  for (const step of s.schedule) if (elapsedMs >= step.atMs) rate = step.rate;
  if (s.dailyAmplitude > 0) rate *= 1 + s.dailyAmplitude * Math.cos((2 * Math.PI * ((now % DAY_MS) - PEAK_MS)) / DAY_MS);
  return rate;
}

export interface Burst {
  geoId: number;
  fromMs: number;
  toMs: number;
  factor: number;
}

/**
 * Bursts last one whole minute, aligned to the minute, so the per-minute spike rule sees each
 * in exactly one minute, with at least the warm-up of ordinary traffic before the first.
 */
export function planBursts(s: Scenario, startMs: number, burstGeoIds: readonly number[]): Burst[] {
  if (s.bursts === 0 || burstGeoIds.length === 0) return [];
  const out: Burst[] = [];
  let from = Math.ceil((startMs + s.burstWarmupMs) / 60_000) * 60_000;
  while (from + 60_000 <= startMs + s.durationMs && (s.bursts < 0 || out.length < s.bursts)) {
    out.push({ geoId: burstGeoIds[out.length % burstGeoIds.length]!, fromMs: from, toMs: from + 60_000, factor: s.burstFactor });
    from += Math.max(60_000, Math.ceil(s.burstEveryMs / 60_000) * 60_000);
  }
  return out;
}
