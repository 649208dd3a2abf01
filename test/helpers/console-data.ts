/** Known data for the console's tests: three geos, two devices, two alerts, two partitions' status, dead letters. */
import type { ClickHouseClient } from '@clickhouse/client';
import { dt64 } from '../../clickhouse/schema.js';

export async function seedConsoleData(client: ClickHouseClient, now = Date.now()): Promise<void> {
  const s10 = (ago: number) => Math.floor((now - ago) / 10_000) * 10;
  const m1 = (ago: number) => Math.floor((now - ago) / 60_000) * 60;
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
    { bucket: m1(90_000), device_id: 'cam-a', geo_id: 100, events: 130, duplicates: 10 },
    { bucket: m1(90_000), device_id: 'cam-b', geo_id: 101, events: 5, duplicates: 0 },
  ]);
  await insert('vcam.geo_type_1m', [
    { bucket: m1(90_000), geo_id: 100, type: 'person', events: 100, late: 0 },
    { bucket: m1(90_000), geo_id: 100, type: 'vehicle', events: 30, late: 0 },
    { bucket: m1(90_000), geo_id: 101, type: 'person', events: 5, late: 0 },
  ]);
  const alert = (id: string, kind: string, severity: string, state: string, openedAgo: number, message: string) => ({
    alert_id: id,
    kind,
    subject: id,
    severity,
    state,
    opened_at: dt64(now - openedAgo),
    resolved_at: state === 'resolved' ? dt64(now - 1_000) : null,
    message,
    updated_at: dt64(now - 1_000),
  });
  await insert('vcam.alerts', [
    alert('write-p1', 'clickhouse_write_failed', 'critical', 'open', 120_000, 'ClickHouse writes failing for 2 min'),
    alert('spike-100', 'geo_spike', 'warning', 'resolved', 600_000, 'geo 100: 300 events in 12:00 UTC'),
  ]);
  const status = (partition: number, lag: number) => ({ at: dt64(now - 2_000), instance: 'proc-1', kafka_partition: partition, lag, events_per_s: 150, latency_p50_ms: 120, latency_p95_ms: 500, latency_p99_ms: 900 });
  await insert('vcam.pipeline_status', [status(0, 1200), status(1, 300)]);
  await insert(
    'vcam.dlq',
    [1, 2, 3].map((i) => ({ received_at: dt64(now - 10_000), agent_id: 'gw', reason: 'invalid_json', message: 'bad', payload: `x${i}`, kafka_partition: 0, kafka_offset: i })),
  );
}
