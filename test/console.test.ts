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
import { startArchiveService, type ArchiveService } from '../archive/service.js';
import { dt64 } from '../clickhouse/schema.js';
import { LocalStore } from '../common/objectstore.js';
import type { PipelineEvent } from '../common/contract.js';
import type { Snapshot } from '../console/snapshot.js';
import { GeoTable } from '../processor/geo.js';
import { ProcessorStore } from '../processor/store.js';
import { ChunkWriter, STALE } from '../processor/writer.js';
import { freePort, waitFor } from './helpers/brokers.js';
import { startClickHouse, type TestClickHouse } from './helpers/clickhouse.js';
import { seedConsoleData } from './helpers/console-data.js';
import { pipelineEvents } from './helpers/events.js';
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

describe('vconsole --json: the archive, against a running archiver', () => {
  let ch: TestClickHouse;
  let writer: ChunkWriter;
  let archive: ArchiveService | undefined;
  const next = new Map<number, bigint>();
  beforeAll(async () => {
    ch = await startClickHouse();
    writer = new ChunkWriter(new ProcessorStore(ch.client, 'vcam.events'), new GeoTable(ch.client), { lateAfterMs: 30_000, maxAgeMs: 29 * 86_400_000 }, 60 * 60_000);
  });
  afterAll(async () => {
    await archive?.close();
    await ch?.stop();
  });

  /** Writes `events` as the next chunk of `partition` with the processor's own writer; `owned` cuts it short like a lost partition. */
  async function chunk(partition: number, events: PipelineEvent[], owned: () => boolean = () => true): Promise<void> {
    const start = next.get(partition) ?? 0n;
    const end = start + BigInt(events.length);
    next.set(partition, end);
    const messages = events.map((e, i) => ({ offset: start + BigInt(i), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
    await writer.write([{ partition, hot: await writer.rebuild(partition, start), range: { start, end }, messages }], { owned });
  }
  const ms = async (sql: string) => Number((await ch.query<{ ms: string }>(sql))[0]!.ms);
  const batches = async () => Number((await ch.query<{ n: string }>('SELECT count() AS n FROM vcam.archive_batches'))[0]!.n);
  const openAlerts = async () => ch.query<{ kind: string }>("SELECT kind FROM vcam.alerts FINAL WHERE state = 'open'");

  it("shows the archiver's batches, the chunk it waits for with its lag, its alert and its own /metrics; then the chunk's replay archived and the alert resolved", async () => {
    await chunk(0, pipelineEvents(100, { prefix: 'a-', spanMs: 60_000 }));
    await chunk(1, pipelineEvents(60, { prefix: 'b-', spanMs: 60_000 }));
    const store = new LocalStore(mkdtempSync(join(tmpdir(), 'vcam-console-archive-')));
    archive = await startArchiveService({ clickhouseUrl: ch.url, ...ch.auth, store, everyMs: 100, retentionDays: 30, vacuumAfterMs: 7 * 86_400_000, maxLagMs: 1_000, alertEveryMs: 100, httpPort: 0 });
    await waitFor(async () => (await batches()) === 1, 30_000, 'the first batch');
    // Recorded, then lost before its first insert: incomplete in vcam.events, so it waits for its replay.
    let checks = 0;
    await expect(chunk(2, pipelineEvents(40, { prefix: 'c-', spanMs: 60_000 }), () => ++checks <= 2)).rejects.toBe(STALE);
    await chunk(3, pipelineEvents(30, { prefix: 'd-', spanMs: 60_000 }));
    await waitFor(async () => (await batches()) === 2 && archive!.archiver.oldestPendingMs !== undefined && (await openAlerts()).some((a) => a.kind === 'archive_lagging'), 30_000, 'batch 2, the cut chunk waiting and the lag alert');

    const cutWritten = await ms("SELECT toUnixTimestamp64Milli(max(written_at)) AS ms FROM vcam.chunks WHERE token = 'vcam.events:2:0-40'");
    expect(archive.archiver.oldestPendingMs).toBe(cutWritten);
    const committedAt = await ms('SELECT toUnixTimestamp64Milli(committed_at) AS ms FROM vcam.archive_batches FINAL WHERE batch = 2');
    const tableId = (await archive.archiver.log.snapshot())!.tableId;
    const metricsUrl = `http://127.0.0.1:${archive.httpPort}/metrics`;
    const before = Date.now();
    const r = await vconsole(['--json', ...ch.args, '--metrics', metricsUrl]);
    const after = Date.now();
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Snapshot;
    expect(s.pipeline.archive).toEqual({
      migrated: true,
      tables: [{ archive: tableId, rowsLastHour: 190, lastBatch: { batch: 2, rows: 30, committedAt, ageS: (s.at - committedAt) / 1000 }, pendingChunks: 1, lagS: (s.at - cutWritten) / 1000 }],
      alerts: [
        {
          kind: 'archive_lagging',
          subject: `archive:${store.url}`,
          severity: 'warning',
          openedAt: expect.any(Number) as number,
          message: expect.stringMatching(new RegExp(`^the oldest event not yet archived to ${store.url} has waited \\d+ s \\(bound 1 s\\)$`)) as string,
        },
      ],
    });
    // The archiver's own lag, scraped while vconsole ran: from the same chunk, at a moment within that run.
    const [component] = s.pipeline.components;
    expect(component).toEqual({ url: metricsUrl, kind: 'archive', up: true, values: { lagSeconds: expect.any(Number) as number, failures: 0 } });
    expect(component!.values.lagSeconds).toBeGreaterThanOrEqual((before - cutWritten) / 1000);
    expect(component!.values.lagSeconds).toBeLessThanOrEqual((after - cutWritten) / 1000);

    await writer.replay((await writer.store.lastChunk(2))!, 2, { owned: () => true });
    await waitFor(async () => (await batches()) === 3 && (await openAlerts()).length === 0, 30_000, 'the replayed chunk archived and the alert resolved');
    const done = JSON.parse((await vconsole(['--json', ...ch.args])).stdout) as Snapshot;
    expect(done.pipeline.archive.tables.map((t) => [t.rowsLastHour, t.lastBatch?.batch, t.lastBatch?.rows, t.pendingChunks, t.lagS])).toEqual([[230, 3, 40, 0, 0]]);
    expect(done.pipeline.archive.alerts).toEqual([]);
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
