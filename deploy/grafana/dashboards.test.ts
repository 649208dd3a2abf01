/**
 * Every dashboard panel's query runs and gives the numbers known data must give: SQL panels
 * against ClickHouse (macros expanded as the plugin does), PromQL panels through promtool.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClickHouse } from '../../test/helpers/clickhouse.js';
import { ARCHIVES, seedArchiveData, seedConsoleData } from '../../test/helpers/console-data.js';
import { expandPanelSql, type GrafanaContext } from '../../test/helpers/grafana.js';

interface Panel {
  id: number;
  title: string;
  type: string;
  interval?: string;
  options?: { reduceOptions?: { values?: boolean } };
  datasource: { type: string };
  targets: { rawSql?: string; expr?: string; format?: number }[];
}
const DIR = fileURLToPath(new URL('dashboards/', import.meta.url));
const dashboard = (name: string) => JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as { panels: Panel[]; refresh: string; templating: { list: { name: string; query: string }[] } };

let ch: Awaited<ReturnType<typeof startClickHouse>>;
// 45 s into the previous minute, so the seeded buckets fall in known minutes and 15 s slots.
const now = Math.floor(Date.now() / 60_000) * 60_000 - 15_000;
beforeAll(async () => {
  ch = await startClickHouse();
  await seedConsoleData(ch.client, now);
  await seedArchiveData(ch.client, now);
  // A geo missing from the reference table: still counted, under its id. Two adjacent buckets.
  const b = (ago: number) => Math.floor((now - ago) / 10_000) * 10;
  await ch.client.insert({
    table: 'vcam.geo_10s',
    values: [
      { bucket: b(20_000), geo_id: 999, events: 4, late: 0 },
      { bucket: b(30_000), geo_id: 999, events: 6, late: 0 },
    ],
    format: 'JSONEachRow',
  });
});
afterAll(() => ch?.stop());

const ALL = { region: { value: 'all' as const, options: ['eu-north', 'eu-south', 'eu-west'] }, geo: { value: 'all' as const, options: ['100', '101', '102'] }, topx: { value: ['2'], options: ['5', '10', '20'] } };
const ctx = (vars: Partial<GrafanaContext['vars']> = {}): GrafanaContext => ({ fromMs: now - 3_600_000, toMs: now, intervalS: 60, vars: { ...ALL, ...vars } as GrafanaContext['vars'] });

async function run(panel: Panel, c = ctx()): Promise<Record<string, unknown>[]> {
  const sql = expandPanelSql(panel.targets[0]!.rawSql!, c);
  const rows = await (await ch.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>();
  // Numbers as numbers, whatever ClickHouse's JSON quoting of 64-bit values.
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+(\.\d+)?(e-?\d+)?$/.test(v) ? Number(v) : v])));
}
const byTitle = (d: ReturnType<typeof dashboard>, title: string) => {
  const p = d.panels.find((x) => x.title === title);
  if (!p) throw new Error(`no panel "${title}"`);
  return p;
};
const values = (rows: Record<string, unknown>[], col: string) => rows.map((r) => r[col]);

describe('Grafana dashboards', () => {
  it('refresh every 10 s, never read raw events, and are set up to render: series as time series, bar gauges with every row, a minimum interval where rows come every 10 s', () => {
    for (const name of ['fleet', 'geo', 'pipeline']) {
      const d = dashboard(name);
      expect(d.refresh).toBe('10s');
      const queries = [...d.panels.flatMap((p) => p.targets.map((t) => t.rawSql ?? '')), ...d.templating.list.map((v) => v.query ?? '')];
      for (const q of queries) expect(q, name).not.toMatch(/\bFROM\s+(vcam\.)?events\b/i);
      for (const p of d.panels.filter((x) => x.datasource.type !== 'prometheus')) {
        expect(p.targets[0]!.format, `${name}: ${p.title}`).toBe(p.type === 'timeseries' ? 0 : 1);
        if (p.type === 'timeseries') expect(['10s', '30s'], `${name}: ${p.title}`).toContain(p.interval);
        if (p.type === 'bargauge') expect(p.options?.reduceOptions?.values, `${name}: ${p.title}`).toBe(true);
      }
    }
  });

  it('Fleet overview: events/s, latency, lag, duplicate/late/DLQ rates, open alerts', async () => {
    const d = dashboard('fleet');
    // Per complete 10 s bucket, whatever Grafana's interval: 7 and 100 events alone in their
    // minutes; 6 events 30 s ago and 39 events 20 s ago in adjacent buckets.
    const rate = (intervalS: number) => run(byTitle(d, 'Events per second'), { ...ctx(), intervalS }).then((r) => values(r, 'events_per_s'));
    expect(await rate(60)).toEqual([0.7, 10, 2.25]);
    expect(await rate(15)).toEqual([0.7, 10, 0.6, 3.9]);
    expect(await rate(5)).toEqual([0.7, 10, 0.6, 3.9]);
    expect(await run(byTitle(d, 'End-to-end latency p50 / p99 (ms, slowest processor)'))).toEqual([expect.objectContaining({ p50_ms: 120, p99_ms: 900 })]);
    expect(values(await run(byTitle(d, 'Consumer lag (events)')), 'lag')).toEqual([1500]);
    expect((await run(byTitle(d, 'Duplicate share')))[0]!.duplicate_share).toBeCloseTo(10 / 145, 6);
    expect((await run(byTitle(d, 'Late share')))[0]!.late_share).toBeCloseTo(3 / 152, 6);
    expect((await run(byTitle(d, 'Dead letters per second')))[0]!.dead_letters_per_s).toBeCloseTo(3 / 3600, 4);
    // One processor alert and two archive alerts (seedArchiveData).
    expect(await run(byTitle(d, 'Open alerts'))).toEqual([{ open_alerts: 3 }]);
  });

  it('Geo: per-geo series with the geo and region variables, top-X geos and devices, the geo table with names', async () => {
    const d = dashboard('geo');
    expect(d.templating.list.map((v) => v.name)).toEqual(['region', 'geo', 'topx']);
    const series = byTitle(d, 'Events per geo');
    const sum = (rows: Record<string, unknown>[]) => {
      const out: Record<string, number> = {};
      for (const r of rows) out[r.geo as string] = (out[r.geo as string] ?? 0) + (r.events as number);
      return out;
    };
    expect(sum(await run(series))).toEqual({ 'North Gate': 130, Harbour: 5, Station: 7, 'geo 999': 10 });
    expect(sum(await run(series, ctx({ geo: { value: ['100', '102'], options: ALL.geo.options } })))).toEqual({ 'North Gate': 130, Station: 7 });
    expect(sum(await run(series, ctx({ region: { value: ['eu-south'], options: ALL.region.options } })))).toEqual({ Harbour: 5 });
    expect(await run(byTitle(d, 'Top geos'))).toEqual([
      { geo: 'North Gate', events: 130 },
      { geo: 'geo 999', events: 10 },
    ]);
    expect(await run(byTitle(d, 'Top devices'))).toEqual([
      { device: 'cam-a', events: 130 },
      { device: 'cam-b', events: 5 },
    ]);
    expect(await run(byTitle(d, 'Geos'))).toEqual([
      { geo_id: 100, geo_name: 'North Gate', region: 'eu-west', events: 130, late: 3 },
      { geo_id: 999, geo_name: 'geo 999', region: '', events: 10, late: 0 },
      { geo_id: 102, geo_name: 'Station', region: 'eu-north', events: 7, late: 0 },
      { geo_id: 101, geo_name: 'Harbour', region: 'eu-south', events: 5, late: 0 },
    ]);
    // The variables' own queries run too.
    const vars = JSON.parse(readFileSync(join(DIR, 'geo.json'), 'utf8')).templating.list as { name: string; query: string; type: string }[];
    const regions = await (await ch.client.query({ query: expandPanelSql(vars[0]!.query, ctx()), format: 'JSONEachRow' })).json<{ region: string }>();
    expect(regions.map((r) => r.region)).toEqual(['eu-north', 'eu-south', 'eu-west']);
    const geos = await (await ch.client.query({ query: expandPanelSql(vars[1]!.query, ctx({ region: { value: ['eu-west', 'eu-north'], options: ALL.region.options } })), format: 'JSONEachRow' })).json<{ __text: string }>();
    expect(geos.map((g) => g.__text)).toEqual(['North Gate', 'Station']);
  });

  it('Pipeline health: lag per partition, rate per processor, alerts history from ClickHouse', async () => {
    const d = dashboard('pipeline');
    expect((await run(byTitle(d, 'Lag per partition (events)'))).map((r) => [r.partition, r.lag])).toEqual([
      [0, 1200],
      [1, 300],
    ]);
    expect((await run(byTitle(d, 'Events counted per second, by processor'))).map((r) => [r.instance, r.events_per_s])).toEqual([['proc-1', 150]]);
    expect((await run(byTitle(d, 'Alerts history'))).map((r) => [r.kind, r.state])).toEqual([
      ['archive_lagging', 'open'],
      ['clickhouse_write_failed', 'open'],
      ['archive_failing', 'open'],
      ['geo_spike', 'resolved'],
    ]);
  });

  it('Pipeline health: archive rows per second over intervals of a minute at least, and the lag of each archive at the end of the range', async () => {
    const d = dashboard('pipeline');
    // seedArchiveData: `main` committed 50 rows 49 min ago and 20 rows 19 min ago within the hour (125 rows 2 h ago, outside it).
    const minute = (minAgo: number) => Math.floor((now - minAgo * 60_000) / 60_000) * 60;
    const rows = (intervalS: number) => run(byTitle(d, 'Archive rows per second'), { ...ctx(), intervalS });
    const perMinute = [
      { time: minute(49), archive: ARCHIVES.main, rows_per_s: 50 / 60 },
      { time: minute(19), archive: ARCHIVES.main, rows_per_s: 20 / 60 },
    ];
    expect((await rows(15)).map((r) => ({ ...r, time: Date.parse(`${(r.time as string).replace(' ', 'T')}Z`) / 1000 }))).toEqual(perMinute);
    expect((await rows(60)).map((r) => ({ ...r, time: Date.parse(`${(r.time as string).replace(' ', 'T')}Z`) / 1000 }))).toEqual(perMinute);
    // `main` waits for c3 since its replay 16 min ago and for c4; `failing` for every chunk, c0 the oldest (125 min); `idle` planned nothing in 7 days.
    expect(await run(byTitle(d, 'Archive lag (s)'))).toEqual([
      { archive: ARCHIVES.main, lag_s: 16 * 60, waiting_chunks: 2 },
      { archive: ARCHIVES.failing, lag_s: 125 * 60, waiting_chunks: 5 },
    ]);
    // At an earlier end of the range, 30 s after c2's record and before batch 3 (c2) was committed at 19 min; `failing` had planned nothing yet.
    expect(await run(byTitle(d, 'Archive lag (s)'), { ...ctx(), toMs: now - 19.5 * 60_000 })).toEqual([{ archive: ARCHIVES.main, lag_s: 30, waiting_chunks: 1 }]);
  });

  it("Pipeline health: the Prometheus panels' PromQL gives the agents' backlog, oldest unsent age and write failures (promtool)", async () => {
    const prom = dashboard('pipeline').panels.filter((p) => p.datasource.type === 'prometheus');
    expect(prom.map((p) => p.title)).toEqual(["Agents' backlog (events)", "Agents' oldest unsent event (s)", 'ClickHouse write failures per second']);
    const expr = (i: number) => prom[i]!.targets[0]!.expr!.replace('$__rate_interval', '5m');
    const dir = mkdtempSync(join(tmpdir(), 'vcam-promql-'));
    writeFileSync(join(dir, 'empty.yml'), 'groups: []\n');
    writeFileSync(
      join(dir, 'panels.test.yml'),
      JSON.stringify({
        rule_files: ['empty.yml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: 'vcam_agent_backlog_events{agent="gw-1"}', values: '100x10' },
              { series: 'vcam_agent_backlog_events{agent="gw-2"}', values: '7x10' },
              { series: 'vcam_agent_oldest_unsent_age_seconds{agent="gw-1"}', values: '60+60x10' },
              { series: 'vcam_processor_clickhouse_write_failures_total{instance="p1"}', values: '0+60x10' },
            ],
            promql_expr_test: [
              {
                expr: expr(0),
                eval_time: '5m',
                exp_samples: [
                  { labels: '{agent="gw-1"}', value: 100 },
                  { labels: '{agent="gw-2"}', value: 7 },
                ],
              },
              { expr: expr(1), eval_time: '5m', exp_samples: [{ labels: '{agent="gw-1"}', value: 360 }] },
              { expr: expr(2), eval_time: '10m', exp_samples: [{ labels: '{instance="p1"}', value: 1 }] },
            ],
          },
        ],
      }),
    );
    const { stdout } = await promisify(execFile)('promtool', ['test', 'rules', 'panels.test.yml'], { cwd: dir });
    expect(stdout).toContain('SUCCESS');
  });
});
