/**
 * Ground truth against what ClickHouse shows. Every count is compared cell by cell (geo ×
 * minute, device, raw rows), so a loss in one place cannot hide behind a duplicate in another.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/query.js';
import type { Ledger } from './ledger.js';

export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
}

/**
 * The start of a run that steady-state latency leaves out: the processor's first fetches and
 * recovery, and the first inserts into each ClickHouse table, take 1–2 s once.
 */
export const WARMUP_MS = 5_000;

export interface Observed {
  /** Distinct events per geo-minute key `geoId@minuteEpochS`, from the 10 s aggregates. */
  geoMinute: Map<string, number>;
  perDevice: Map<string, number>;
  rawRows: number;
  rawDistinct: number;
  dlq: number;
  latencyMs: Quantiles;
  /** The same, of events received WARMUP_MS or more after the first: the steady state. */
  latencyAfterWarmupMs: Quantiles;
  /** From the first agent receive to the last processor write. */
  spanMs: number;
  spikeAlerts: { geoId: number; openedAt: number }[];
  /** Table totals, for telling when the pipeline has stopped writing. */
  totals: { geo: number; deviceEvents: number; deviceDuplicates: number };
}

export interface Comparison {
  unique: number;
  counted: number;
  lost: number;
  doubleCounted: number;
  /** Cells (geo-minutes, devices) where ClickHouse and the ledger disagree, a few for the report. */
  mismatches: string[];
  burstsInjected: number;
  burstsAlerted: number;
  /** Spike alerts where no burst was injected. */
  otherSpikeAlerts: number;
}

/**
 * The tables' totals, cheaply: counts from part metadata and sums of the small aggregate tables.
 * They only grow while the pipeline writes, so they tell verify when it has stopped, without
 * `observe`'s scan of every raw event (which, polled twice a second on millions of rows, took
 * 1.5 cores of ClickHouse away from the processors it was waiting for).
 */
export async function totals(client: ClickHouseClient): Promise<{ rawRows: number; geo: number; deviceEvents: number; deviceDuplicates: number; dlqRows: number }> {
  const [r] = await queryRows<Record<'raw' | 'geo' | 'de' | 'dd' | 'dlq', string>>(
    client,
    `SELECT (SELECT count() FROM vcam.events) AS raw, (SELECT sum(events) FROM vcam.geo_10s) AS geo,
       (SELECT sum(events) FROM vcam.device_1m) AS de, (SELECT sum(duplicates) FROM vcam.device_1m) AS dd, (SELECT count() FROM vcam.dlq) AS dlq`,
  );
  return { rawRows: Number(r!.raw), geo: Number(r!.geo), deviceEvents: Number(r!.de), deviceDuplicates: Number(r!.dd), dlqRows: Number(r!.dlq) };
}

export async function observe(client: ClickHouseClient): Promise<Observed> {
  const [geo, dev, raw, dlq, alerts] = await Promise.all([
    queryRows<{ g: number; m: number; n: string }>(client, 'SELECT geo_id AS g, toUInt32(toStartOfMinute(bucket)) AS m, sum(events) AS n FROM vcam.geo_10s GROUP BY g, m'),
    queryRows<{ d: string; n: string; dup: string }>(client, 'SELECT device_id AS d, sum(events) AS n, sum(duplicates) AS dup FROM vcam.device_1m GROUP BY d'),
    queryRows<{ rows: string; distinct: string; q: number[]; steady: number[]; first: string; last: string }>(
      client,
      `WITH toUnixTimestamp64Milli(processed_at) - toUnixTimestamp64Milli(received_at) AS ms,
         (SELECT min(toUnixTimestamp64Milli(received_at)) FROM vcam.events) AS t0
       SELECT count() AS rows, uniqExact(event_id) AS distinct,
         quantiles(0.5, 0.95, 0.99)(ms) AS q,
         quantilesIf(0.5, 0.95, 0.99)(ms, toUnixTimestamp64Milli(received_at) >= t0 + ${WARMUP_MS}) AS steady,
         toString(min(toUnixTimestamp64Milli(received_at))) AS first, toString(max(toUnixTimestamp64Milli(processed_at))) AS last
       FROM vcam.events`,
    ),
    queryRows<{ n: string }>(client, 'SELECT uniqExact(dlq_id) AS n FROM vcam.dlq'),
    spikeAlerts(client),
  ]);
  const r = raw[0]!;
  const quantiles = (q: number[]): Quantiles => {
    const [p50, p95, p99] = q.map((x) => Math.round(Number(x) || 0));
    return { p50: p50 ?? 0, p95: p95 ?? 0, p99: p99 ?? 0 };
  };
  return {
    geoMinute: new Map(geo.map((x) => [`${x.g}@${x.m}`, Number(x.n)])),
    perDevice: new Map(dev.map((x) => [x.d, Number(x.n)])),
    rawRows: Number(r.rows),
    rawDistinct: Number(r.distinct),
    dlq: Number(dlq[0]!.n),
    latencyMs: quantiles(r.q),
    latencyAfterWarmupMs: quantiles(r.steady),
    spanMs: Number(r.rows) ? Number(r.last) - Number(r.first) : 0,
    totals: {
      geo: geo.reduce((a, x) => a + Number(x.n), 0),
      deviceEvents: dev.reduce((a, x) => a + Number(x.n), 0),
      deviceDuplicates: dev.reduce((a, x) => a + Number(x.dup), 0),
    },
    spikeAlerts: alerts,
  };
}

export async function spikeAlerts(client: ClickHouseClient): Promise<Observed['spikeAlerts']> {
  const rows = await queryRows<{ subject: string; at: string }>(client, "SELECT subject, toString(toUnixTimestamp64Milli(opened_at)) AS at FROM vcam.alerts FINAL WHERE kind = 'geo_spike'");
  return rows.map((a) => ({ geoId: Number(a.subject.replace('geo:', '')), openedAt: Number(a.at) }));
}

/** Events missing and extra, cell by cell; the first ten differing cells are noted in `mismatches`. */
export function cellDiff(what: string, want: Map<string, number>, got: Map<string, number>, mismatches: string[], where = 'ClickHouse'): { lost: number; extra: number } {
  let lost = 0;
  let extra = 0;
  for (const key of new Set([...want.keys(), ...got.keys()])) {
    const d = (got.get(key) ?? 0) - (want.get(key) ?? 0);
    if (d < 0) lost -= d;
    if (d > 0) extra += d;
    if (d !== 0 && mismatches.length < 10) mismatches.push(`${what} ${key}: expected ${want.get(key) ?? 0}, ${where} has ${got.get(key) ?? 0}`);
  }
  return { lost, extra };
}

export function compare(ledger: Ledger, seen: Observed): Comparison {
  const expected = new Map<string, number>();
  for (const [g, m] of ledger.perGeoMinute) for (const [minute, n] of m) expected.set(`${g}@${minute}`, n);
  const mismatches: string[] = [];
  const byGeo = cellDiff('geo@minute', expected, seen.geoMinute, mismatches);
  const byDevice = cellDiff('device', ledger.perDevice, seen.perDevice, mismatches);
  const counted = [...seen.geoMinute.values()].reduce((a, b) => a + b, 0);
  const burstHits = ledger.bursts.filter((b) => seen.spikeAlerts.some((a) => a.geoId === b.geoId && a.openedAt === b.fromMs));
  return {
    unique: ledger.unique,
    counted,
    // Any view that shows a loss or a double count is one: the worst of them is reported.
    lost: Math.max(byGeo.lost, byDevice.lost, ledger.unique - seen.rawDistinct, 0),
    doubleCounted: Math.max(byGeo.extra, byDevice.extra, seen.rawRows - seen.rawDistinct, 0),
    mismatches,
    burstsInjected: ledger.bursts.length,
    burstsAlerted: burstHits.length,
    otherSpikeAlerts: seen.spikeAlerts.filter((a) => !ledger.bursts.some((b) => a.geoId === b.geoId && a.openedAt === b.fromMs)).length,
  };
}
