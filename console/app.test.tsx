/** Each view, the keys and the help overlay, rendered by Ink against known data in the real ClickHouse engine. */
import { render } from 'ink-testing-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64 } from '../clickhouse/schema.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { waitFor } from '../test/helpers/brokers.js';
import { App } from './app.js';
import { acknowledge, geoDetail, takeSnapshot } from './snapshot.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
const now = Date.now();
const s10 = (ago: number) => Math.floor((now - ago) / 10_000) * 10;
const m1 = (ago: number) => Math.floor((now - ago) / 60_000) * 60;

/** Known data: three geos, two devices, alerts, two partitions' status, dead letters. */
export async function seed(client: typeof ch.client): Promise<void> {
  const insert = (table: string, values: object[]) => client.insert({ table, values, format: 'JSONEachRow' });
  await insert('vcam.geo', [
    { geo_id: 100, geo_name: 'North Gate', region: 'eu-west', loaded_at: dt64(now) },
    { geo_id: 101, geo_name: 'Harbour', region: 'eu-south', loaded_at: dt64(now) },
    { geo_id: 102, geo_name: 'Station', region: 'eu-north', loaded_at: dt64(now) },
  ]);
  await insert('vcam.geo_10s', [
    { bucket: s10(20_000), geo_id: 100, events: 30, late: 3 },
    { bucket: s10(200_000), geo_id: 100, events: 100, late: 0 },
    { bucket: s10(20_000), geo_id: 101, events: 5, late: 0 },
    { bucket: s10(2_000_000), geo_id: 102, events: 7, late: 0 },
  ]);
  await insert('vcam.device_1m', [
    { bucket: m1(30_000), device_id: 'cam-a', geo_id: 100, events: 130, duplicates: 10 },
    { bucket: m1(30_000), device_id: 'cam-b', geo_id: 101, events: 5, duplicates: 0 },
  ]);
  await insert('vcam.geo_type_1m', [
    { bucket: m1(30_000), geo_id: 100, type: 'person', events: 100, late: 0 },
    { bucket: m1(30_000), geo_id: 100, type: 'vehicle', events: 30, late: 0 },
    { bucket: m1(30_000), geo_id: 101, type: 'person', events: 5, late: 0 },
  ]);
  const alert = (id: string, kind: string, severity: string, state: string, openedAgo: number, message: string) => ({
    alert_id: id, kind, subject: id, severity, state, opened_at: dt64(now - openedAgo), resolved_at: state === 'resolved' ? dt64(now - 1_000) : null, message, updated_at: dt64(now - 1_000),
  });
  await insert('vcam.alerts', [
    alert('write-p1', 'clickhouse_write_failed', 'critical', 'open', 120_000, 'ClickHouse writes failing for 2 min'),
    alert('spike-100', 'geo_spike', 'warning', 'resolved', 600_000, 'geo 100: 300 events in 12:00 UTC'),
  ]);
  const status = (partition: number, lag: number) => ({ at: dt64(now - 2_000), instance: 'proc-1', kafka_partition: partition, lag, events_per_s: 150, latency_p50_ms: 120, latency_p95_ms: 500, latency_p99_ms: 900 });
  await insert('vcam.pipeline_status', [status(0, 1200), status(1, 300)]);
  await insert('vcam.dlq', [1, 2, 3].map((i) => ({ received_at: dt64(now - 10_000), agent_id: 'gw', reason: 'invalid_json', message: 'bad', payload: `x${i}`, kafka_partition: 0, kafka_offset: i })));
}

beforeAll(async () => {
  ch = await startClickHouse();
  await seed(ch.client);
});
afterAll(() => ch?.stop());

const KEY = { down: '\u001B[B', enter: '\r', escape: '\u001B', tab: '\t' };

function renderApp(load = (o: { topWindowS: number }) => takeSnapshot(ch.client, ch.url, o)) {
  const r = render(<App load={load} detail={(g) => geoDetail(ch.client, g)} acknowledge={(id) => acknowledge(ch.client, id, 'tester')} refreshMs={200} color={false} />);
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

  it('Pipeline: lag per partition and the processor\'s liveness', async () => {
    const app = renderApp();
    await app.see('events/s');
    await app.press(KEY.tab, KEY.tab, KEY.tab, KEY.tab);
    await app.see(/● proc-1 +0 +1,200 +150 +\d+s ago/);
    expect(app.frame()).toMatch(/● proc-1 +1 +300/);
    expect(app.frame()).toContain('no agent /metrics configured');
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
