/** Each view, the keys and the help overlay, rendered by Ink against known data in the real ClickHouse engine. */
import { render } from 'ink-testing-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { waitFor } from '../test/helpers/brokers.js';
import { seedConsoleData } from '../test/helpers/console-data.js';
import { App } from './app.js';
import { acknowledge, geoDetail, takeSnapshot } from './snapshot.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;

beforeAll(async () => {
  ch = await startClickHouse();
  await seedConsoleData(ch.client);
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
