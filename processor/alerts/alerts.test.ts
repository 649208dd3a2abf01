/** Alert rules against the real ClickHouse engine (embedded server over HTTP), with a controlled clock. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClickHouse } from '../../test/helpers/clickhouse.js';
import { dt64 } from '../../clickhouse/schema.js';
import { geoVolumeRule } from './geo-volume.js';
import { AlertEvaluator, ALERT_DEFAULTS, type HealthSnapshot } from './index.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(() => ch?.stop());

const MIN = 60_000;
const t0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
const alerts = () => ch.query<{ kind: string; subject: string; state: string; message: string }>('SELECT kind, subject, state, message FROM vcam.alerts FINAL ORDER BY kind, subject');

/** The spike rule only judges minutes a processor was running for (see geo-volume.ts). */
async function processorRanAt(...times: number[]) {
  await ch.client.insert({
    table: 'vcam.pipeline_status',
    values: times.map((ms) => ({ at: dt64(ms), instance: 'test', kafka_partition: -1, lag: 0, events_per_s: 1, latency_p50_ms: 1, latency_p95_ms: 1, latency_p99_ms: 1 })),
    format: 'JSONEachRow',
  });
}

async function minuteOfGeo(geo: number, minuteStart: number, events: number) {
  await ch.client.insert({ table: 'vcam.geo_type_1m', values: [{ bucket: minuteStart / 1000, geo_id: geo, type: 'person', events, late: 0 }], format: 'JSONEachRow' });
}

describe('alerts', () => {
  const health: HealthSnapshot = { instance: 'p1', lagEvents: 0, lagSeconds: 0, lastChunkAt: t0, lostOffsets: [], offsetsBackwards: [] };
  let evaluator: AlertEvaluator;
  beforeAll(async () => {
    evaluator = AlertEvaluator.standard(ch.client, () => health, { ...ALERT_DEFAULTS, lateAfterMs: 30_000 });
    // The processor has been running (a status row a minute) since t0.
    await processorRanAt(...Array.from({ length: 60 }, (_, m) => t0 + m * MIN));
    await evaluator.start(3_600_000);
  });
  afterAll(() => evaluator.stop());
  const at = (minuteEnd: number) => minuteEnd + 31_000;

  it('an injected spike in one geo opens an alert when its minute is complete, and it resolves when the geo calms down', async () => {
    for (let m = 0; m < 10; m++) {
      await minuteOfGeo(5, t0 + m * MIN, 10);
      await minuteOfGeo(6, t0 + m * MIN, 25);
    }
    await minuteOfGeo(5, t0 + 10 * MIN, 200);
    await minuteOfGeo(6, t0 + 10 * MIN, 12);
    // The spike minute is not complete yet: nothing fires.
    await evaluator.tick(t0 + 10 * MIN + 20_000);
    expect((await alerts()).filter((a) => a.kind === 'geo_spike')).toEqual([]);
    await evaluator.tick(at(t0 + 11 * MIN));
    const open = (await alerts()).filter((a) => a.kind === 'geo_spike');
    expect(open).toEqual([{ kind: 'geo_spike', subject: 'geo:5', state: 'open', message: expect.stringMatching(/geo 5: 200 events/) }]);

    await minuteOfGeo(5, t0 + 11 * MIN, 11);
    await minuteOfGeo(6, t0 + 11 * MIN, 10);
    await evaluator.tick(at(t0 + 12 * MIN));
    expect((await alerts()).filter((a) => a.kind === 'geo_spike')).toEqual([{ kind: 'geo_spike', subject: 'geo:5', state: 'resolved', message: expect.any(String) }]);
  });

  it('a geo that stops opens a drop alert', async () => {
    await minuteOfGeo(5, t0 + 12 * MIN, 30);
    await minuteOfGeo(6, t0 + 12 * MIN, 0);
    await evaluator.tick(at(t0 + 13 * MIN));
    expect((await alerts()).filter((a) => a.kind === 'geo_drop')).toEqual([{ kind: 'geo_drop', subject: 'geo:6', state: 'open', message: expect.stringMatching(/geo 6: 0 events/) }]);
  });

  it('a silent device opens an alert, and it resolves when the device speaks again', async () => {
    const now = Date.now();
    const bucket = (ms: number) => Math.floor(ms / MIN) * 60;
    await ch.client.insert({
      table: 'vcam.device_1m',
      values: [
        { bucket: bucket(now - 30 * MIN), device_id: 'cam-quiet', geo_id: 1, events: 4, duplicates: 0 },
        { bucket: bucket(now - 1 * MIN), device_id: 'cam-busy', geo_id: 1, events: 9, duplicates: 0 },
      ],
      format: 'JSONEachRow',
    });
    await evaluator.tick(now);
    const silent = (await alerts()).filter((a) => a.kind === 'device_silent');
    expect(silent).toEqual([{ kind: 'device_silent', subject: 'device:cam-quiet', state: 'open', message: expect.stringMatching(/silent since/) }]);
    await ch.client.insert({ table: 'vcam.device_1m', values: [{ bucket: bucket(now), device_id: 'cam-quiet', geo_id: 1, events: 1, duplicates: 0 }], format: 'JSONEachRow' });
    await evaluator.tick(now + 1000);
    expect((await alerts()).find((a) => a.subject === 'device:cam-quiet')!.state).toBe('resolved');
  });

  it('pipeline health: failing writes, lag, stalls and a consumer out of its group open and resolve; data loss and offsets gone backwards stay open', async () => {
    const now = Date.now();
    const backwards = [{ partition: 2, expected: '5000', logEnd: '120' }];
    // A consumer down for less than the threshold is a restart in progress, not an alert.
    Object.assign(health, { consumerDown: { consumer: 'events', since: now - ALERT_DEFAULTS.consumerDownAfterMs + 1_000, error: 'Connection error: connect ECONNREFUSED' } });
    await evaluator.tick(now);
    expect((await alerts()).filter((a) => a.kind === 'consumer_down')).toEqual([]);
    Object.assign(health, { failingSince: now - 5_000, lagEvents: 500_000, lastChunkAt: now - 120_000, lostOffsets: [{ partition: 3, count: 21_000, at: now }], offsetsBackwards: backwards });
    await evaluator.tick(now + 1_000);
    const pipeline = (a: { kind: string; subject: string }) => a.subject.startsWith('processor:') || a.kind === 'data_loss' || a.kind === 'offsets_backwards';
    const kinds = (await alerts()).filter(pipeline).map((a) => `${a.kind}:${a.state}`);
    expect(kinds.sort()).toEqual(['clickhouse_write_failing:open', 'consumer_down:open', 'consumer_lag:open', 'data_loss:open', 'offsets_backwards:open', 'processor_stalled:open']);
    expect((await alerts()).find((a) => a.kind === 'consumer_down')!.message).toMatch(/events consumer has not been in its Kafka group since .* last error: Connection error: connect ECONNREFUSED/);
    Object.assign(health, { failingSince: undefined, consumerDown: undefined, lagEvents: 0, lastChunkAt: now, lostOffsets: [], offsetsBackwards: [] });
    await evaluator.tick(now + 10_000);
    const after = (await alerts()).filter(pipeline).map((a) => `${a.kind}:${a.state}`);
    expect(after.sort()).toEqual(['clickhouse_write_failing:resolved', 'consumer_down:resolved', 'consumer_lag:resolved', 'data_loss:open', 'offsets_backwards:open', 'processor_stalled:resolved']);
    // Few events behind, but old ones: lag in seconds alone opens the lag alert.
    Object.assign(health, { lagEvents: 10, lagSeconds: 300 });
    await evaluator.tick(now + 20_000);
    expect(evaluator.book.openAlerts().filter((a) => a.kind === 'consumer_lag')).toHaveLength(1);
    expect(
      (await alerts())
        .filter((a) => a.kind === 'consumer_lag')
        .map((a) => a.state)
        .sort(),
    ).toEqual(['open', 'resolved']);
    Object.assign(health, { lagEvents: 0, lagSeconds: 0 });
    await evaluator.tick(now + 30_000);
    expect(evaluator.book.openAlerts().filter((a) => a.kind === 'consumer_lag')).toHaveLength(0);
  });

  it('two processors evaluating the same spike record one alert', async () => {
    for (let m = 20; m < 30; m++) await minuteOfGeo(9, t0 + m * MIN, 10);
    await minuteOfGeo(9, t0 + 30 * MIN, 300);
    const other = AlertEvaluator.standard(ch.client, () => ({ instance: 'p2', lagEvents: 0, lagSeconds: 0, lastChunkAt: Date.now(), lostOffsets: [], offsetsBackwards: [] }), { ...ALERT_DEFAULTS, lateAfterMs: 30_000 });
    await other.start(3_600_000);
    other.stop();
    await evaluator.tick(at(t0 + 31 * MIN));
    await other.tick(at(t0 + 31 * MIN) + 4_000);
    const rows = await ch.query<{ n: number }>("SELECT count() AS n FROM vcam.alerts FINAL WHERE kind = 'geo_spike' AND subject = 'geo:9'");
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('a restarted evaluator picks up the open alerts instead of opening them twice', async () => {
    const again = AlertEvaluator.standard(ch.client, () => ({ instance: 'p1', lagEvents: 0, lagSeconds: 0, lastChunkAt: Date.now(), lostOffsets: [], offsetsBackwards: [] }), { ...ALERT_DEFAULTS, lateAfterMs: 30_000 });
    await again.start(3_600_000);
    again.stop();
    // data_loss and offsets_backwards stay open until a person resolves them; the geo 9 spike is still open; the rest resolved above.
    expect(
      again.book
        .openAlerts()
        .map((a) => a.kind)
        .sort(),
    ).toEqual(['data_loss', 'geo_spike', 'offsets_backwards']);
  });

  it("resolves the alerts of a processor that is gone (a crashed one's host:pid never comes back), and leaves a live one's alone", async () => {
    const lagging = (instance: string): HealthSnapshot => ({ instance, lagEvents: 500_000, lagSeconds: 600, lastChunkAt: Date.now(), lostOffsets: [], offsetsBackwards: [] });
    const statusOf = (instance: string, ms: number) =>
      ch.client.insert({ table: 'vcam.pipeline_status', values: [{ at: dt64(ms), instance, kafka_partition: 0, lag: 500_000, events_per_s: 0, latency_p50_ms: 0, latency_p95_ms: 0, latency_p99_ms: 0 }], format: 'JSONEachRow' });
    const now = Date.now();
    for (const instance of ['host-a:101', 'host-b:202']) {
      const e = AlertEvaluator.standard(ch.client, () => lagging(instance), { ...ALERT_DEFAULTS, lateAfterMs: 30_000 });
      await statusOf(instance, now - 10 * MIN);
      await e.tick(now - 10 * MIN);
      e.stop();
    }
    // host-b keeps writing its status; host-a was killed ten minutes ago. A processor restarted on host-a is a new instance.
    await statusOf('host-b:202', now - MIN);
    const restarted = AlertEvaluator.standard(ch.client, () => ({ instance: 'host-a:303', lagEvents: 0, lagSeconds: 0, lastChunkAt: now, lostOffsets: [], offsetsBackwards: [] }), { ...ALERT_DEFAULTS, lateAfterMs: 30_000 });
    await restarted.start(3_600_000);
    restarted.stop();
    await restarted.tick(now);
    const lag = (await alerts()).filter((a) => a.kind === 'consumer_lag' && a.subject.startsWith('processor:host-'));
    expect(lag.map((a) => `${a.subject}:${a.state}`)).toEqual(['processor:host-a:101:resolved', 'processor:host-b:202:open']);
  });

  it('minutes from before the processor ran are no baseline: no spike until it has run for the whole baseline', async () => {
    const rule = geoVolumeRule(ch.client, { ...ALERT_DEFAULTS, baselineMinutes: 3, lateAfterMs: 30_000 });
    const t1 = t0 - 24 * 60 * MIN;
    // Late stragglers in the minutes before the start, then live traffic.
    await minuteOfGeo(9, t1, 21);
    await minuteOfGeo(9, t1 + 1 * MIN, 21);
    await minuteOfGeo(9, t1 + 2 * MIN, 21);
    await minuteOfGeo(9, t1 + 3 * MIN, 200);
    expect(await rule.evaluate(at(t1 + 4 * MIN))).toEqual([]);
    await processorRanAt(t1 + 70_000);
    expect(await rule.evaluate(at(t1 + 4 * MIN))).toEqual([]);
    await processorRanAt(t1 + 10_000);
    expect(await rule.evaluate(at(t1 + 4 * MIN))).toEqual([expect.objectContaining({ kind: 'geo_spike', subject: 'geo:9', since: t1 + 3 * MIN })]);
  });
});
