/**
 * vconsole as operators and scripts run it: `--json` equals direct ClickHouse queries; an
 * unreachable ClickHouse is a clear error; and the real console in a real terminal (tmux)
 * against a running stack fed by the simulator.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64 } from '../clickhouse/schema.js';
import type { Snapshot } from '../console/snapshot.js';
import { freePort, waitFor } from './helpers/brokers.js';
import { startClickHouse } from './helpers/clickhouse.js';
import { seedConsoleData } from './helpers/console-data.js';
import { VCAM_BIN, vcam, waitHealthy, type Proc } from './helpers/processes.js';

const VCONSOLE = VCAM_BIN.replace(/vcam\.js$/, 'vconsole.js');
/** An SGR sequence setting a foreground colour, alone or among other attributes (31, 1;31, 38;5;n, 91). */
// eslint-disable-next-line no-control-regex -- ESC is what the test looks for
const FOREGROUND_COLOUR = /\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m/;

/** Asynchronously: the embedded ClickHouse it reads runs in this test's process. */
async function vconsole(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [VCONSOLE, ...args], { env: { ...process.env, VCAM_FROM_SOURCE: '1' }, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('vconsole --json', () => {
  let ch: Awaited<ReturnType<typeof startClickHouse>>;
  beforeAll(async () => {
    ch = await startClickHouse();
    await seedConsoleData(ch.client);
  });
  afterAll(() => ch?.stop());

  it('prints one snapshot whose numbers are the ones direct ClickHouse queries give (also without --json when stdout is not a terminal)', async () => {
    const r = await vconsole(['--json', ...ch.args]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Snapshot;
    const direct = async <T>(sql: string) => ch.query<T>(sql);
    // The same windows as the snapshot's, from its own time: on a loaded machine seconds pass between the two reads.
    const end = Math.floor(s.at / 10_000) * 10;
    const perGeo = await direct<{ g: number; m5: string; h1: string }>(
      `SELECT geo_id AS g, sumIf(events, bucket >= toDateTime(${end - 300})) AS m5, sum(events) AS h1 FROM vcam.geo_10s WHERE bucket >= toDateTime(${end - 3600}) AND bucket < toDateTime(${end}) GROUP BY g`,
    );
    expect(Object.fromEntries(s.geos.map((g) => [g.geoId, [g.m5, g.h1]]))).toEqual(Object.fromEntries(perGeo.map((g) => [g.g, [Number(g.m5), Number(g.h1)]])));
    expect(s.geos.map((g) => g.name)).toEqual(['North Gate', 'Harbour', 'Station']);
    const [open] = await direct<{ n: string }>("SELECT count() AS n FROM vcam.alerts FINAL WHERE state = 'open'");
    expect(s.overview.openAlerts).toBe(Number(open!.n));
    const lags = await direct<{ p: number; lag: string }>('SELECT kafka_partition AS p, argMax(lag, at) AS lag FROM vcam.pipeline_status GROUP BY p ORDER BY p');
    expect(s.pipeline.partitions.map((p) => [p.partition, p.lag])).toEqual(lags.map((l) => [l.p, Number(l.lag)]));
    expect(s.overview.lagEvents).toBe(lags.reduce((a, l) => a + Number(l.lag), 0));
    const [dlq] = await direct<{ n: string }>(`SELECT count() AS n FROM vcam.dlq WHERE received_at >= fromUnixTimestamp64Milli(toInt64(${s.at - 300_000})) AND received_at < fromUnixTimestamp64Milli(toInt64(${s.at}))`);
    expect(s.overview.dlqPerS).toBeCloseTo(Number(dlq!.n) / 300, 6);
    const types = await direct<{ t: string; n: string }>('SELECT toString(type) AS t, sum(events) AS n FROM vcam.geo_type_1m WHERE bucket >= now() - 300 GROUP BY t ORDER BY n DESC');
    expect(s.top.types).toEqual(types.map((t) => ({ key: t.t, events: Number(t.n) })));

    const piped = await vconsole([...ch.args]);
    expect(piped.code).toBe(0);
    expect((JSON.parse(piped.stdout) as Snapshot).geos).toEqual(s.geos);
  });

  it('exits 1 with a clear message when ClickHouse cannot be reached', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await vconsole(['--json', '--clickhouse-url', url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`vconsole: cannot read ClickHouse at ${url}`);
    expect(r.stdout).toBe('');
  });
});

describe('vconsole in a terminal (tmux) against a running stack', () => {
  let up: Proc;
  let chPort: number;
  let httpPort: number;
  let upDir: string;
  const session = `vconsole-test-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const pane = () => tmux('capture-pane', '-p', '-t', session);

  beforeAll(async () => {
    [chPort, httpPort] = [await freePort(), await freePort()];
    const mqtt = await freePort();
    upDir = mkdtempSync(join(tmpdir(), 'vcam-console-'));
    up = vcam(['up', '--data-dir', upDir, '--http-port', String(httpPort), '--mqtt-port', String(mqtt), '--clickhouse-port', String(chPort), '--sim-rate', '300', '--summary-every', '0', '--archive-http-port', String(await freePort())]);
    await waitHealthy(httpPort, up, 60_000);
  });
  afterAll(async () => {
    try {
      tmux('kill-session', '-t', session);
    } catch {
      // already gone: the console exited
    }
    up?.child.kill('SIGINT');
    await up?.exited;
  });

  it('shows geo names, counts that grow, an alert and lag; q exits cleanly and restores the terminal', async () => {
    // A terminal as an operator's: no CI markers (Ink renders differently under CI), no colour.
    const env = Object.entries({ ...process.env, VCAM_FROM_SOURCE: '1', NO_COLOR: '1' })
      .filter(([k]) => k !== 'CI' && !k.startsWith('CI_') && k !== 'CONTINUOUS_INTEGRATION')
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    const cmd = `env -i ${env} ${JSON.stringify(process.execPath)} ${JSON.stringify(VCONSOLE)} --clickhouse-url http://127.0.0.1:${chPort} --clickhouse-password-file ${upDir}/clickhouse/clickhouse.secret --metrics http://127.0.0.1:${httpPort}/metrics; echo "vconsole exited $?"; sleep 30`;
    tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', cmd);
    // Single-node has no Kafka lag, and says so; the Pipeline view shows the processor's own lag.
    await waitFor(() => /consumer lag +n\/a \(single-node: no Kafka\)/.test(pane()), 60_000, 'the overview with its lag row');
    expect(pane()).toMatch(/● agent local/);
    tmux('send-keys', '-t', session, '5');
    await waitFor(() => /● \S+ +local +0 +\d[\d,.]* +\d+s ago/.test(pane()), 30_000, 'the Pipeline view with lag per partition');
    expect(pane()).toMatch(/● local +0 +\d+s +connected/);

    tmux('send-keys', '-t', session, '2');
    const geo100 = () => Number(/100 +Dublin Harbour 1 +\S+ +\S+ +([\d,]+)/.exec(pane())?.[1]?.replace(/,/g, '') ?? NaN);
    await waitFor(() => geo100() > 0, 30_000, 'geo 100 with its name and a count');
    const first = geo100();
    await waitFor(() => geo100() > first, 30_000, 'the count of geo 100 growing');

    const client = createClient({ url: `http://127.0.0.1:${chPort}`, password: readFileSync(join(upDir, 'clickhouse', 'clickhouse.secret'), 'utf8').trim() });
    await client.insert({
      table: 'vcam.alerts',
      values: [
        {
          alert_id: 'e2e-lag',
          kind: 'consumer_lag',
          subject: 'processor:e2e',
          severity: 'critical',
          state: 'open',
          opened_at: dt64(Date.now() - 5_000),
          resolved_at: null,
          message: 'consumer lag 250000 events',
          updated_at: dt64(Date.now()),
        },
      ],
      format: 'JSONEachRow',
    });
    // --json against this same running stack: what does not move between two reads is equal.
    const r = await vconsole(['--json', '--clickhouse-url', `http://127.0.0.1:${chPort}`, '--clickhouse-password-file', join(upDir, 'clickhouse', 'clickhouse.secret')]);
    expect(r.code).toBe(0);
    const snap = JSON.parse(r.stdout) as Snapshot;
    const direct = async <T>(query: string) => (await client.query({ query, format: 'JSONEachRow' })).json<T>();
    const names = await direct<{ geo_id: number; geo_name: string }>('SELECT geo_id, geo_name FROM vcam.geo FINAL');
    const byId = new Map(names.map((n) => [Number(n.geo_id), n.geo_name]));
    expect(snap.geos.length).toBeGreaterThan(5);
    for (const g of snap.geos) expect(g.name).toBe(byId.get(g.geoId));
    const [open] = await direct<{ n: string }>("SELECT count() AS n FROM vcam.alerts FINAL WHERE state = 'open'");
    expect(snap.overview.openAlerts).toBe(Number(open!.n));
    expect(snap.alerts.find((a) => a.id === 'e2e-lag')).toMatchObject({ state: 'open', severity: 'critical' });
    await client.close();
    tmux('send-keys', '-t', session, '4');
    await waitFor(() => /✖ OPEN +critical .*consumer_lag +consumer lag 250000 events/.test(pane()), 30_000, 'the alert in the Alerts view');

    // NO_COLOR: no foreground colours anywhere (symbols carry the status).
    expect(tmux('capture-pane', '-e', '-p', '-t', session)).not.toMatch(FOREGROUND_COLOUR);
    // 80×24 still shows every view's essentials.
    tmux('resize-window', '-t', session, '-x', '80', '-y', '24');
    tmux('send-keys', '-t', session, '2');
    await waitFor(() => /100 +Dublin Harbour 1/.test(pane()) && pane().trimEnd().split('\n').length <= 24, 15_000, 'the Geos view at 80×24');
    expect(pane()).toContain('1 Overview');
    // The status line fits on one line at 80 columns (a wrap would push the view down).
    expect(pane().split('\n')[1]).toMatch(/refreshed \d+s ago .* open alerts?$/);

    tmux('send-keys', '-t', session, 'q');
    await waitFor(() => pane().includes('vconsole exited 0'), 15_000, 'vconsole to exit 0 on q');
  });
});

describe('vcam up on a terminal', () => {
  it('shows vconsole in the foreground, in colour; q stops the whole stack and exits 0', async () => {
    const session = `vcam-up-test-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
    const [chPort, httpPort, mqtt] = [await freePort(), await freePort(), await freePort()];
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-up-tty-'));
    const env = Object.entries({ ...process.env, VCAM_FROM_SOURCE: '1', TERM: 'xterm-256color' })
      .filter(([k]) => k !== 'NO_COLOR' && k !== 'CI' && !k.startsWith('CI_') && k !== 'CONTINUOUS_INTEGRATION')
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(' ');
    const cmd = `env -i ${env} ${JSON.stringify(process.execPath)} ${JSON.stringify(VCAM_BIN)} up --data-dir ${dataDir} --http-port ${httpPort} --mqtt-port ${mqtt} --clickhouse-port ${chPort}; echo "up exited $?"; sleep 30`;
    tmux('new-session', '-d', '-s', session, '-x', '80', '-y', '24', cmd);
    const pane = () => tmux('capture-pane', '-p', '-t', session);
    try {
      await waitFor(() => /events\/s \(processed\) +\d/.test(pane()), 90_000, 'the console in the foreground');
      expect(tmux('capture-pane', '-e', '-p', '-t', session)).toMatch(FOREGROUND_COLOUR);
      tmux('send-keys', '-t', session, '2');
      await waitFor(() => /100 +Dublin Harbour 1/.test(pane()), 30_000, 'named geos');
      tmux('send-keys', '-t', session, 'q');
      await waitFor(() => pane().includes('up exited 0'), 30_000, 'vcam up to stop everything and exit 0');
    } finally {
      tmux('kill-session', '-t', session);
    }
  });
});
