/** Each view, the keys and the help overlay, rendered by Ink against known data in the real ClickHouse engine. */
import { render } from 'ink-testing-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../clickhouse/schema.js';
import { startClickHouse, type TestClickHouse } from '../test/helpers/clickhouse.js';
import { waitFor } from '../test/helpers/brokers.js';
import { ARCHIVES, seedArchiveData, seedConsoleData } from '../test/helpers/console-data.js';
import { App } from './app.js';
import { acknowledge, geoDetail, takeSnapshot } from './snapshot.js';

// One ClickHouse per describe, closed at its end: chDB opens one data directory per process.
let ch: TestClickHouse;

const KEY = { down: '\u001B[B', enter: '\r', escape: '\u001B', tab: '\t' };

function renderApp(load = (o: { topWindowS: number }) => takeSnapshot(ch.client, ch.url, o), db = ch) {
  const r = render(<App load={load} detail={(g) => geoDetail(db.client, g)} acknowledge={(id) => acknowledge(db.client, id, 'tester')} refreshMs={200} color={false} />);
  const frame = () => r.lastFrame() ?? '';
  const see = (text: string | RegExp, what = String(text)) =>
    waitFor(() => (typeof text === 'string' ? frame().includes(text) : text.test(frame())), 10_000, what).catch((err: Error) => {
      throw new Error(`${err.message}; the screen:\n${frame()}`);
    });
  const press = async (...keys: string[]) => {
    for (const k of keys) {
      r.stdin.write(k);
      await new Promise((res) => setTimeout(res, 30));
    }
  };
  return { ...r, frame, see, press };
}

describe('vconsole views', () => {
  beforeAll(async () => {
    ch = await startClickHouse();
    await seedConsoleData(ch.client);
  });
  afterAll(() => ch?.stop());

  it('Overview: rate, latency, lag, duplicate/late/DLQ rates, open alerts and liveness', async () => {
    const app = renderApp();
    await app.see('events/s (processed)');
    await app.see(/events\/s \(processed\) +150/);
    expect(app.frame()).toMatch(/p50 120ms +p99 900ms/);
    expect(app.frame()).toMatch(/consumer lag +1,500 events/);
    // 10 duplicates of 145 arrivals; 3 late of 135 counted; 3 dead letters in 5 min.
    expect(app.frame()).toMatch(/duplicates +6\.90% of arrivals/);
    expect(app.frame()).toMatch(/late +2\.22% of counted/);
    expect(app.frame()).toMatch(/dead letters +0\.01\/s/);
    expect(app.frame()).toMatch(/open alerts +! 1/);
    expect(app.frame()).toMatch(/● processor proc-1 +last status \d+s ago/);
    // One line short of the 24-line terminal, so Ink never clears the whole screen.
    expect(app.frame().split('\n').length).toBe(23);
    app.unmount();
  });

  it('Geos: counts for 1 min / 5 min / 1 h, sort, filter without SQL, drill into devices and types', async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press('2');
    await app.see(/100 +North Gate +eu-west +30 +130 +130/);
    expect(app.frame()).toMatch(/101 +Harbour +eu-south +5 +5 +5/);
    expect(app.frame()).toMatch(/102 +Station +eu-north +0 +0 +7/);
    expect(app.frame()).toContain('5m▼');
    await app.press('s');
    await app.see('1m▼');
    await app.press('/', "h'; DROP TABLE vcam.geo; --", KEY.enter);
    await app.see(`no geo matches "h'; DROP TABLE vcam.geo; --"`);
    expect(Number((await ch.query<{ n: number }>('SELECT count() AS n FROM vcam.geo'))[0]!.n)).toBe(3);
    await app.press(KEY.escape, '/', 'harb', KEY.enter);
    await app.see(/101 +Harbour/);
    expect(app.frame()).not.toContain('North Gate');
    await app.press(KEY.escape);
    await app.see('North Gate');
    await app.press('s', 's', 's'); // back to 5m: North Gate first
    await app.press(KEY.enter);
    await app.see(/geo 100 North Gate \(eu-west\)/);
    await app.see(/cam-a +130 +10/);
    expect(app.frame()).toMatch(/person +100/);
    expect(app.frame()).toMatch(/vehicle +30/);
    await app.press(KEY.escape);
    await app.see(/100 +North Gate/);
    app.unmount();
  });

  it('Top: geos, devices and types over a window the w key changes', async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press('3');
    await app.see('over the last 5m 00s');
    expect(app.frame()).toMatch(/1 100 North Gate +130/);
    expect(app.frame()).toMatch(/1 cam-a +130/);
    expect(app.frame()).toMatch(/1 person +105/);
    await app.press('w');
    await app.see('over the last 1h 00m');
    await app.see(/2 102 Station +7/);
    app.unmount();
  });

  it('Alerts: open first with severity and age; a acknowledges the selected one', async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press('4');
    await app.see(/✖ OPEN +critical 2m \d\ds +clickhouse_wri… +ClickHouse writes failing/);
    const lines = app.frame().split('\n');
    expect(lines.findIndex((l) => l.includes('OPEN'))).toBeLessThan(lines.findIndex((l) => l.includes('resolved')));
    await app.press('a');
    await app.see('acknowledged clickhouse_write_failed write-p1');
    await app.see('open,ack');
    expect(await ch.query('SELECT alert_id, acknowledged_by FROM vcam.alert_acks FINAL')).toEqual([{ alert_id: 'write-p1', acknowledged_by: 'tester' }]);
    await app.press(KEY.down, 'a');
    await app.see('select an open alert to acknowledge');
    app.unmount();
  });

  it("Pipeline: lag per partition and the processor's liveness", async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press(KEY.tab, KEY.tab, KEY.tab, KEY.tab);
    await app.see(/● proc-1 +0 +1,200 +150 +\d+s ago/);
    expect(app.frame()).toMatch(/● proc-1 +1 +300/);
    expect(app.frame()).toContain('no agent /metrics configured');
    expect(app.frame()).toMatch(/^archive: none yet *$/m);
    app.unmount();
  });

  it('? shows every key; esc closes it', async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press('?');
    await app.see('keys');
    for (const k of ['1-5, tab', 'enter', '/', 'w', 'a', 'q, ctrl-c']) expect(app.frame()).toContain(`  ${k}`);
    await app.press(KEY.escape);
    await app.see('events/s (processed)');
    app.unmount();
  });

  it('says so plainly when ClickHouse stops answering, and how old the numbers shown are', async () => {
    let fail = false;
    const app = renderApp(async (o) => {
      if (fail) throw new Error('connect ECONNREFUSED 127.0.0.1:8123');
      return takeSnapshot(ch.client, ch.url, o);
    });
    await app.see('refreshed');
    fail = true;
    await app.see(/✖ ClickHouse unreachable for \d+s \(connect ECONNREFUSED 127\.0\.0\.1:8123\) — numbers below are \d+s old/);
    fail = false;
    await app.see('refreshed');
    app.unmount();
  });
});

describe('vconsole Pipeline: the raw-event archive', () => {
  let db: TestClickHouse;
  // Whole seconds, so that the ages shown are exact.
  const now = Math.floor(Date.now() / 1000) * 1000;
  const load = (o: { topWindowS: number }) => takeSnapshot(db.client, db.url, { ...o, now, archiveLagEveryMs: 0 });
  beforeAll(async () => {
    db = await startClickHouse();
  });
  afterAll(() => db?.stop());

  it('a database from before the archive (migration 9) shows none and fails nothing; after vcam migrate, "none yet"', async () => {
    for (const query of [
      'DROP TABLE vcam.archive_batches',
      'DROP TABLE vcam.archive_chunks',
      'ALTER TABLE vcam.chunks DROP COLUMN events, DROP COLUMN processed_at',
      'ALTER TABLE vcam.events DROP INDEX processed_at_range',
      'ALTER TABLE vcam.schema_migrations DELETE WHERE version = 9',
    ])
      await db.client.command({ query, clickhouse_settings: { mutations_sync: '2' } });
    const before = renderApp(load, db);
    await before.see('events/s');
    await before.press('5');
    await before.see('archive: none yet (this database predates it; `vcam migrate` adds its tables)');
    expect(before.frame()).not.toContain('ClickHouse query failed');
    before.unmount();

    expect(await migrate(db.client)).toEqual([9]);
    const after = renderApp(load, db);
    await after.see('events/s');
    await after.press('5');
    await after.see(/^archive: none yet *$/m);
    after.unmount();
  });

  it('per archive: rows in the last hour, the last batch and its age, and the lag; then the open archive alerts', async () => {
    await seedArchiveData(db.client, now);
    const at = (minAgo: number) => now - minAgo * 60_000;
    expect((await load({ topWindowS: 300 })).pipeline.archive).toEqual({
      migrated: true,
      tables: [
        { archive: ARCHIVES.main, rowsLastHour: 70, lastBatch: { batch: 3, rows: 20, committedAt: at(19), ageS: 19 * 60 }, pendingChunks: 2, lagS: 16 * 60 },
        { archive: ARCHIVES.failing, rowsLastHour: 0, lastBatch: null, pendingChunks: 5, lagS: 125 * 60 },
        { archive: ARCHIVES.idle, rowsLastHour: 0, lastBatch: { batch: 7, rows: 900, committedAt: at(14_400), ageS: 14_400 * 60 }, pendingChunks: null, lagS: null },
      ],
      alerts: [
        {
          kind: 'archive_failing',
          subject: 'archive:s3://vcam-archive/raw',
          severity: 'critical',
          openedAt: at(3),
          message: 'archiving to s3://vcam-archive/raw has failed since 2026-01-01T00:00:00.000Z: Access Denied',
        },
        { kind: 'archive_lagging', subject: 'archive:/data/archive', severity: 'warning', openedAt: at(1), message: 'the oldest event not yet archived to /data/archive has waited 960 s (bound 900 s)' },
      ],
    });

    const app = renderApp(load, db);
    await app.see('events/s');
    await app.press('5');
    const utc = (minAgo: number) => new Date(at(minAgo)).toISOString().slice(11, 19);
    await app.see(/archive +rows 1h +last batch \(UTC\) +lag/);
    const lines = app.frame().split('\n');
    const from = lines.findIndex((l) => l.startsWith('archive '));
    expect(lines.slice(from + 1, from + 6).map((l) => l.trimEnd())).toEqual([
      `▲ 0f7c3b5e-2d4a-4f0e-9a57-6c         70  #3 ${utc(19)} (19m 00s ago)  16m 00s`,
      `▲ 5b2e9d10-7c3f-4a8e-b1d2-93          0  none committed yet          2h 05m`,
      `✖ 9a8b7c6d-5e4f-4a3b-8c2d-1e          0  #7 ${utc(14_400)} (10d 0h ago)   unknown`,
      // Cut to the 100 columns of the test terminal (less the indent).
      '  ✖ archive_failing archive:s3://vcam-archive/raw, open 3m 00s: archiving to s3://vcam-archive/raw …',
      '  ▲ archive_lagging archive:/data/archive, open 1m 00s: the oldest event not yet archived to /data/…',
    ]);
    app.unmount();
  });
});
