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

/** Delta table ids of the archives seedArchiveData writes (the archiver records batches under its table's id). */
export const ARCHIVES = { main: '0f7c3b5e-2d4a-4f0e-9a57-6c1d2e3f4a5b', failing: '5b2e9d10-7c3f-4a8e-b1d2-93e4f5a6b7c8', idle: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' } as const;

/**
 * Known archive records, as the processors and `vcam archive` write them. Chunks, by the minutes
 * since their record: c0 125, c1 50, c2 20 (two partitions), archived by `main` as batches 1-3
 * committed 120, 49 and 19 minutes ago; c3 cut short at 30 and replayed at 16, waiting; c4 5,
 * planned as `main`'s batch 4 and not committed, waiting; c5 without events; c6 eight days old.
 * `failing` planned c1 and c2 as its batch 1 three minutes ago and has committed nothing. `idle`
 * last committed 10 days ago. Open alerts: `main`'s lagging (1 min), `failing`'s failing (3 min).
 *
 * So `main`: 70 rows in the last hour (50 + 20), last batch #3 19 min ago, 2 chunks waiting, lag
 * 16 min (c3 since its replay); `failing`: all 5 chunks with events waiting, lag 2 h 05 min (c0);
 * `idle`: lag unknown (its chunk records may be gone).
 */
export async function seedArchiveData(client: ClickHouseClient, now = Date.now()): Promise<void> {
  const min = (m: number) => dt64(now - m * 60_000);
  const insert = (table: string, values: object[]) => client.insert({ table, values, format: 'JSONEachRow' });
  // Each part of a chunk: its partition, offsets, events and processed_at (the part's identity in the archive's plans).
  const chunks = {
    c0: { parts: [{ p: 0, start: 0, end: 125, events: 125 }], processed: 125, written: 125 },
    c1: { parts: [{ p: 0, start: 125, end: 175, events: 50 }], processed: 50, written: 50 },
    c2: {
      parts: [
        { p: 0, start: 175, end: 187, events: 12 },
        { p: 1, start: 0, end: 8, events: 8 },
      ],
      processed: 20,
      written: 20,
    },
    c3: { parts: [{ p: 1, start: 8, end: 48, events: 40 }], processed: 30, written: 30 },
    c4: { parts: [{ p: 0, start: 187, end: 192, events: 5 }], processed: 5, written: 5 },
    c5: { parts: [{ p: 2, start: 0, end: 3, events: 0 }], processed: 40, written: 40 },
    c6: { parts: [{ p: 2, start: 3, end: 9, events: 6 }], processed: 8 * 1440, written: 8 * 1440 },
  };
  const token = (c: (typeof chunks)[keyof typeof chunks]) => `vcam.events:${c.parts.map((x) => `${x.p}:${x.start}-${x.end}`).join(',')}`;
  const record = (c: (typeof chunks)[keyof typeof chunks], writtenMinAgo = c.written) =>
    c.parts.map((x) => ({ topic: 'vcam.events', kafka_partition: x.p, start_offset: x.start, end_offset: x.end, written_at: min(writtenMinAgo), token: token(c), blocks: 1, events: x.events, processed_at: min(c.processed) }));
  await insert('vcam.chunks', [...Object.values(chunks).flatMap((c) => record(c)), ...record(chunks.c3, 16)]);
  const plan = (archive: string, batch: number, plannedMinAgo: number, ...cs: (typeof chunks)[keyof typeof chunks][]) =>
    cs.flatMap((c) => c.parts.map((x) => ({ archive, batch, token: token(c), kafka_partition: x.p, processed_at: min(c.processed), events: x.events, written_at: min(c.written), planned_at: min(plannedMinAgo) })));
  await insert('vcam.archive_chunks', [
    ...plan(ARCHIVES.main, 1, 121, chunks.c0),
    ...plan(ARCHIVES.main, 2, 49.5, chunks.c1),
    ...plan(ARCHIVES.main, 3, 19.5, chunks.c2),
    ...plan(ARCHIVES.main, 4, 4, chunks.c4),
    ...plan(ARCHIVES.failing, 1, 3, chunks.c1, chunks.c2),
  ]);
  const batch = (archive: string, b: number, rows: number, oldestMinAgo: number, committedMinAgo: number) => ({
    archive,
    batch: b,
    version: b,
    rows,
    files: 1,
    bytes: rows * 100,
    oldest_written_at: min(oldestMinAgo),
    committed_at: min(committedMinAgo),
  });
  await insert('vcam.archive_batches', [batch(ARCHIVES.main, 1, 125, 125, 120), batch(ARCHIVES.main, 2, 50, 50, 49), batch(ARCHIVES.main, 3, 20, 20, 19), batch(ARCHIVES.idle, 7, 900, 14_405, 14_400)]);
  const alert = (kind: string, subject: string, severity: string, openedMinAgo: number, message: string) => ({
    alert_id: `${kind}:${subject}`,
    kind,
    subject,
    severity,
    state: 'open',
    opened_at: min(openedMinAgo),
    resolved_at: null,
    message,
    updated_at: min(0),
  });
  await insert('vcam.alerts', [
    alert('archive_lagging', 'archive:/data/archive', 'warning', 1, 'the oldest event not yet archived to /data/archive has waited 960 s (bound 900 s)'),
    alert('archive_failing', 'archive:s3://vcam-archive/raw', 'critical', 3, 'archiving to s3://vcam-archive/raw has failed since 2026-01-01T00:00:00.000Z: Access Denied'),
  ]);
}
