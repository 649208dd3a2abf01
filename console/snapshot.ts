/**
 * What the console shows, read in one go: ClickHouse (aggregates, alerts, pipeline status) and,
 * where configured, components' /metrics. Every query takes its values as parameters; the
 * console's filter text is applied to the rows here, never sent as SQL.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/query.js';
import { CHUNK_RECORDS_DAYS, CHUNK_RECORDS_KEPT_MS, dt64, notInArchive } from '../clickhouse/schema.js';
import { scrape, type ComponentMetrics } from './metrics.js';

export interface GeoRow {
  geoId: number;
  name: string;
  region: string;
  m1: number;
  m5: number;
  h1: number;
  /** Events per minute over the last 15 minutes, oldest first. */
  spark: number[];
}

export interface AlertView {
  id: string;
  kind: string;
  subject: string;
  severity: string;
  state: 'open' | 'resolved';
  openedAt: number;
  resolvedAt: number | null;
  message: string;
  acknowledged: boolean;
}

export interface PartitionView {
  instance: string;
  partition: number;
  lag: number;
  eventsPerS: number;
  ageS: number;
}

export interface ArchiveView {
  /** The Delta table's id: what the archiver records its batches under. */
  archive: string;
  /** Rows of the batches committed in the last hour. */
  rowsLastHour: number;
  /** The newest committed batch; null while none has been. */
  lastBatch: { batch: number; rows: number; committedAt: number; ageS: number } | null;
  /**
   * Chunks of events in no committed batch of this archive, and how long the oldest of them has
   * waited since its record was last written (0: none waits). Both null when the archive has done
   * nothing for longer than chunk records are kept: what it waits for may be gone from ClickHouse.
   */
  pendingChunks: number | null;
  lagS: number | null;
}

export interface ArchiveAlert {
  kind: string;
  /** `archive:<url>`: alerts name the archive by its URL, tables by their id. */
  subject: string;
  severity: string;
  openedAt: number;
  message: string;
}

export interface Snapshot {
  at: number;
  clickhouseUrl: string;
  overview: {
    /** Events counted per second by the live processors (their latest status rows). */
    eventsPerS: number;
    /** Events per 10 s of event time over the last 5 minutes, oldest first. */
    rateSpark: number[];
    /** The slowest live processor's, over its last interval; null when none counted anything. */
    latencyMs: { p50: number; p99: number } | null;
    /** null when it cannot be known (a partition without a live processor) or does not apply (single-node). */
    lagEvents: number | null;
    lagNote: string;
    /** Over the last 5 minutes of event time. */
    duplicateRate: number;
    lateRate: number;
    dlqPerS: number;
    openAlerts: number;
    /** Seconds since the newest pipeline status row: how old what the processors report is. */
    statusAgeS: number | null;
  };
  geos: GeoRow[];
  top: { windowS: number; geos: { key: string; events: number }[]; devices: { key: string; events: number }[]; types: { key: string; events: number }[] };
  alerts: AlertView[];
  pipeline: {
    partitions: PartitionView[];
    processors: { instance: string; lastSeenS: number; alive: boolean }[];
    components: ComponentMetrics[];
    /** `migrated` false: this database predates the archive (migration 9), so it has none. */
    archive: { migrated: boolean; tables: ArchiveView[]; alerts: ArchiveAlert[] };
  };
}

/** A processor is alive while its status rows (every 10 s) keep coming. */
const ALIVE_S = 30;
export const TOP_WINDOWS_S = [300, 3600, 86400] as const;

export interface SnapshotOptions {
  now?: number;
  topWindowS?: number;
  topN?: number;
  metricsUrls?: string[];
  /** How often the archive's waiting chunks are looked for again (see ARCHIVE_LAG_EVERY_MS); 0: every snapshot. */
  archiveLagEveryMs?: number;
}

export async function takeSnapshot(client: ClickHouseClient, clickhouseUrl: string, o: SnapshotOptions = {}): Promise<Snapshot> {
  const now = o.now ?? Date.now();
  // Windows end at the last complete bucket, so a count does not swing while a bucket fills.
  const end = Math.floor(now / 10_000) * 10;
  const endMin = Math.floor(now / 60_000) * 60;
  const topWindowS = o.topWindowS ?? TOP_WINDOWS_S[0];
  const p = { end, endMin, nowMs: dt64(now), top: topWindowS, n: o.topN ?? 10 };
  const [spark, geo, geoSpark, quality, dlq, status, top, alerts, openAlerts, components, archive] = await Promise.all([
    queryRows<{ b: number; e: string }>(client, 'SELECT toUInt32(bucket) AS b, sum(events) AS e FROM vcam.geo_10s WHERE bucket >= toDateTime({end:UInt32} - 300) AND bucket < toDateTime({end:UInt32}) GROUP BY b', p),
    queryRows<{ geo_id: number; name: string; region: string; m1: string; m5: string; h1: string }>(
      client,
      `SELECT a.geo_id AS geo_id, any(g.geo_name) AS name, any(g.region) AS region,
         sumIf(events, bucket >= toDateTime({end:UInt32} - 60)) AS m1, sumIf(events, bucket >= toDateTime({end:UInt32} - 300)) AS m5, sum(events) AS h1
       FROM vcam.geo_10s AS a LEFT JOIN (SELECT geo_id, geo_name, region FROM vcam.geo FINAL) AS g ON a.geo_id = g.geo_id
       WHERE bucket >= toDateTime({end:UInt32} - 3600) AND bucket < toDateTime({end:UInt32}) GROUP BY geo_id`,
      p,
    ),
    queryRows<{ geo_id: number; m: number; e: string }>(
      client,
      'SELECT geo_id, toUInt32(toStartOfMinute(bucket)) AS m, sum(events) AS e FROM vcam.geo_10s WHERE bucket >= toDateTime({endMin:UInt32} - 900) AND bucket < toDateTime({endMin:UInt32}) GROUP BY geo_id, m',
      p,
    ),
    queryRows<{ events: string; late: string; devEvents: string; dups: string }>(
      client,
      `SELECT (SELECT sum(events) FROM vcam.geo_10s WHERE bucket >= toDateTime({end:UInt32} - 300) AND bucket < toDateTime({end:UInt32})) AS events,
              (SELECT sum(late) FROM vcam.geo_10s WHERE bucket >= toDateTime({end:UInt32} - 300) AND bucket < toDateTime({end:UInt32})) AS late,
              (SELECT sum(events) FROM vcam.device_1m WHERE bucket >= toDateTime({endMin:UInt32} - 300) AND bucket < toDateTime({endMin:UInt32})) AS devEvents,
              (SELECT sum(duplicates) FROM vcam.device_1m WHERE bucket >= toDateTime({endMin:UInt32} - 300) AND bucket < toDateTime({endMin:UInt32})) AS dups`,
      p,
    ),
    queryRows<{ n: string }>(client, 'SELECT uniqExact(dlq_id) AS n FROM vcam.dlq WHERE received_at >= {nowMs:DateTime64(3)} - INTERVAL 300 SECOND AND received_at < {nowMs:DateTime64(3)}', p),
    queryRows<{ instance: string; partition: number; lag: string; eps: number; p50: number; p99: number; last_at: string }>(
      client,
      `SELECT instance, kafka_partition AS partition, argMax(lag, at) AS lag, argMax(events_per_s, at) AS eps,
         argMax(latency_p50_ms, at) AS p50, argMax(latency_p99_ms, at) AS p99, toString(toUnixTimestamp64Milli(max(at))) AS last_at
       FROM vcam.pipeline_status WHERE at >= {nowMs:DateTime64(3)} - INTERVAL 1 HOUR GROUP BY instance, partition ORDER BY instance, partition`,
      p,
    ),
    Promise.all(
      [
        'SELECT toString(geo_id) AS key, sum(events) AS events FROM vcam.geo_10s WHERE bucket >= toDateTime({end:UInt32} - {top:UInt32}) AND bucket < toDateTime({end:UInt32}) GROUP BY key ORDER BY events DESC LIMIT {n:UInt32}',
        'SELECT device_id AS key, sum(events) AS events FROM vcam.device_1m WHERE bucket >= toDateTime({endMin:UInt32} - {top:UInt32}) AND bucket < toDateTime({endMin:UInt32}) GROUP BY key ORDER BY events DESC LIMIT {n:UInt32}',
        'SELECT toString(type) AS key, sum(events) AS events FROM vcam.geo_type_1m WHERE bucket >= toDateTime({endMin:UInt32} - {top:UInt32}) AND bucket < toDateTime({endMin:UInt32}) GROUP BY key ORDER BY events DESC LIMIT {n:UInt32}',
      ].map((q) => queryRows<{ key: string; events: string }>(client, q, p)),
    ),
    alertRows(client, p),
    queryRows<{ n: string }>(client, "SELECT count() AS n FROM vcam.alerts FINAL WHERE state = 'open'", p),
    Promise.all((o.metricsUrls ?? []).map((url) => scrape(url))),
    archiveSection(client, now, o.archiveLagEveryMs ?? ARCHIVE_LAG_EVERY_MS),
  ]);

  const sparkBy = new Map(spark.map((r) => [Number(r.b), Number(r.e)]));
  const rateSpark = Array.from({ length: 30 }, (_, i) => sparkBy.get(end - 300 + i * 10) ?? 0);
  const minutes = new Map<number, Map<number, number>>();
  for (const r of geoSpark) {
    let m = minutes.get(r.geo_id);
    if (!m) minutes.set(r.geo_id, (m = new Map()));
    m.set(Number(r.m), Number(r.e));
  }
  // A partition belongs to whichever instance wrote its newest row: a restarted or rebalanced
  // processor's old rows must not count twice. Owners that reported lately are the live ones.
  const owner = new Map<number, (typeof status)[number]>();
  for (const s of status) if (!owner.has(s.partition) || Number(s.last_at) > Number(owner.get(s.partition)!.last_at)) owner.set(s.partition, s);
  const alive = (s: { last_at: string }) => (now - Number(s.last_at)) / 1000 <= ALIVE_S;
  const liveOwners = [...owner.values()].filter(alive);
  const perInstance = new Map(liveOwners.map((s) => [s.instance, s]));
  const busy = [...perInstance.values()].filter((s) => Number(s.eps) > 0);
  const lastSeen = new Map<string, number>();
  for (const s of status) lastSeen.set(s.instance, Math.max(lastSeen.get(s.instance) ?? 0, Number(s.last_at)));
  const q = quality[0];
  const events = Number(q?.events ?? 0);
  const devEvents = Number(q?.devEvents ?? 0);
  const dups = Number(q?.dups ?? 0);
  const newest = Math.max(0, ...status.map((s) => Number(s.last_at)));
  const singleNode = owner.size > 0 && [...owner.keys()].every((k) => k < 0);
  return {
    at: now,
    clickhouseUrl,
    overview: {
      // Each processor writes its rate on every partition's row: one per processor.
      eventsPerS: [...perInstance.values()].reduce((a, s) => a + Number(s.eps), 0),
      rateSpark,
      // A processor with nothing to count reports 0 ms; that is no latency, not a good one.
      latencyMs: busy.length ? { p50: Math.max(...busy.map((s) => Number(s.p50))), p99: Math.max(...busy.map((s) => Number(s.p99))) } : null,
      lagEvents: singleNode ? null : owner.size && liveOwners.length === owner.size ? liveOwners.reduce((a, s) => a + Number(s.lag), 0) : null,
      lagNote: singleNode ? 'single-node: no Kafka' : owner.size === 0 ? 'no processor has reported' : liveOwners.length < owner.size ? `${owner.size - liveOwners.length} partition(s) without a live processor` : '',
      duplicateRate: devEvents + dups > 0 ? dups / (devEvents + dups) : 0,
      lateRate: events > 0 ? Number(q?.late ?? 0) / events : 0,
      dlqPerS: Number(dlq[0]?.n ?? 0) / 300,
      openAlerts: Number(openAlerts[0]?.n ?? 0),
      statusAgeS: newest ? Math.max(0, (now - newest) / 1000) : null,
    },
    geos: geo
      .map((g) => ({
        geoId: Number(g.geo_id),
        name: g.name || '(unknown geo)',
        region: g.region,
        m1: Number(g.m1),
        m5: Number(g.m5),
        h1: Number(g.h1),
        spark: Array.from({ length: 15 }, (_, i) => minutes.get(Number(g.geo_id))?.get(endMin - 900 + i * 60) ?? 0),
      }))
      .sort((a, b) => b.m5 - a.m5 || a.geoId - b.geoId),
    top: {
      windowS: topWindowS,
      geos: top[0]!.map((r) => ({ key: r.key, events: Number(r.events) })),
      devices: top[1]!.map((r) => ({ key: r.key, events: Number(r.events) })),
      types: top[2]!.map((r) => ({ key: r.key, events: Number(r.events) })),
    },
    alerts: alerts.map((a) => ({
      id: a.alert_id,
      kind: a.kind,
      subject: a.subject,
      severity: a.severity,
      state: a.state,
      openedAt: Number(a.opened),
      resolvedAt: a.resolved === null ? null : Number(a.resolved),
      message: a.message,
      acknowledged: Boolean(Number(a.acked)),
    })),
    pipeline: {
      partitions: [...owner.values()].map((s) => ({ instance: s.instance, partition: s.partition, lag: Number(s.lag), eventsPerS: Number(s.eps), ageS: (now - Number(s.last_at)) / 1000 })).sort((a, b) => a.partition - b.partition),
      processors: [...lastSeen].map(([instance, at]) => ({ instance, lastSeenS: (now - at) / 1000, alive: (now - at) / 1000 <= ALIVE_S && perInstance.has(instance) })),
      components,
      archive,
    },
  };
}

type AlertRow = { alert_id: string; kind: string; subject: string; severity: string; state: 'open' | 'resolved'; opened: string; resolved: string | null; message: string; acked: number };

/** Open alerts first, then by severity and age; without acknowledgements where `vcam migrate` has not added their table yet. */
async function alertRows(client: ClickHouseClient, p: Record<string, unknown>): Promise<AlertRow[]> {
  const query = (acks: boolean) => `SELECT a.alert_id AS alert_id, kind, subject, severity, toString(state) AS state, toString(toUnixTimestamp64Milli(opened_at)) AS opened,
         if(isNull(resolved_at), NULL, toString(toUnixTimestamp64Milli(assumeNotNull(resolved_at)))) AS resolved, message, ${acks ? "k.alert_id != ''" : '0'} AS acked
       FROM (SELECT * FROM vcam.alerts FINAL WHERE state = 'open' OR updated_at >= {nowMs:DateTime64(3)} - INTERVAL 1 DAY) AS a
       ${acks ? 'LEFT JOIN (SELECT alert_id FROM vcam.alert_acks FINAL) AS k ON a.alert_id = k.alert_id' : ''}
       ORDER BY state = 'open' DESC, multiIf(severity = 'critical', 0, severity = 'warning', 1, 2), opened_at DESC LIMIT 100`;
  try {
    return await queryRows<AlertRow>(client, query(true), p);
  } catch (err) {
    if ((err as { type?: string }).type !== 'UNKNOWN_TABLE') throw err;
    return queryRows<AlertRow>(client, query(false), p);
  }
}

/**
 * The waiting chunks are an anti-join of a week of chunk records with the archive's plans: about
 * 0.4 s of ClickHouse at a million chunks. A batch comes a minute apart by default, so the
 * console looks again every 10 s rather than every refresh; between looks the lag grows from the
 * oldest chunk last seen, as the archiver's own gauge does between its looks.
 */
const ARCHIVE_LAG_EVERY_MS = 10_000;
type Waiting = Map<string, { chunks: number; oldestMs: number }>;
const waitingLooks = new WeakMap<ClickHouseClient, { at: number; archives: string; look: Promise<Waiting> }>();

/** The archive's tables and its open alerts. */
async function archiveSection(client: ClickHouseClient, now: number, everyMs: number): Promise<Snapshot['pipeline']['archive']> {
  const [alerts, tables] = await Promise.all([
    queryRows<{ kind: string; subject: string; severity: string; opened: string; message: string }>(
      client,
      `SELECT kind, subject, severity, toString(toUnixTimestamp64Milli(opened_at)) AS opened, message FROM vcam.alerts FINAL
       WHERE state = 'open' AND kind IN ('archive_lagging', 'archive_failing') ORDER BY severity = 'critical' DESC, opened_at, subject`,
    ),
    archiveTables(client, now, everyMs).catch((err: unknown) => {
      // A database from before migration 9 has no archive, and that is no reason to fail the console.
      if ((err as { type?: string }).type === 'UNKNOWN_TABLE') return null;
      throw err;
    }),
  ]);
  return {
    migrated: tables !== null,
    tables: tables ?? [],
    alerts: alerts.map((a) => ({ kind: a.kind, subject: a.subject, severity: a.severity, openedAt: Number(a.opened), message: a.message })),
  };
}

/**
 * Each archive's batches, waiting chunks and lag, computed from what the archiver records, by its
 * own rules (archive/ledger.ts): a chunk of events recorded in the last 7 days waits until a
 * committed batch of the archive holds it, and has waited since its record was last written (a
 * replay writes it again). The archiver is the authority (vcam_archive_lag_seconds); this differs
 * from it only while a committed batch is not yet noted in vcam.archive_batches (a crash between
 * commit and record, noted at the archiver's next start): its chunks still wait here meanwhile.
 */
async function archiveTables(client: ClickHouseClient, now: number, everyMs: number): Promise<ArchiveView[]> {
  const p = { nowMs: dt64(now) };
  const [batches, plans] = await Promise.all([
    queryRows<{ archive: string; rows_1h: string; last_at: string; last_batch: string; last_rows: string }>(
      client,
      `SELECT archive, sumIf(rows, committed_at > {nowMs:DateTime64(3)} - INTERVAL 1 HOUR) AS rows_1h, toString(toUnixTimestamp64Milli(max(committed_at))) AS last_at,
         argMax(batch, committed_at) AS last_batch, argMax(rows, committed_at) AS last_rows
       FROM vcam.archive_batches FINAL WHERE committed_at <= {nowMs:DateTime64(3)} GROUP BY archive`,
      p,
    ),
    // An archive whose first batch is planned but not committed (failing from its start) is listed too.
    queryRows<{ archive: string; planned: string }>(client, 'SELECT archive, toString(toUnixTimestamp64Milli(max(planned_at))) AS planned FROM vcam.archive_chunks WHERE planned_at <= {nowMs:DateTime64(3)} GROUP BY archive', p),
  ]);
  const active = new Map<string, number>();
  for (const r of [...batches.map((b) => ({ archive: b.archive, at: Number(b.last_at) })), ...plans.map((r) => ({ archive: r.archive, at: Number(r.planned) }))]) active.set(r.archive, Math.max(active.get(r.archive) ?? 0, r.at));
  // An archive idle for longer than chunk records live has no lag to compute: what it waits for may be gone.
  const known = [...active].filter(([, at]) => now - at <= CHUNK_RECORDS_KEPT_MS).map(([a]) => a);
  const key = known.sort().join('\n');
  let look = waitingLooks.get(client);
  if (!look || look.archives !== key || Date.now() - look.at >= everyMs) {
    const fresh = { at: Date.now(), archives: key, look: waitingChunks(client, known, now) };
    waitingLooks.set(client, (look = fresh));
    // A failed look is not kept: the next snapshot looks again.
    fresh.look.catch(() => waitingLooks.get(client) === fresh && waitingLooks.delete(client));
  }
  const waiting = await look.look;
  const byArchive = new Map(batches.map((b) => [b.archive, b]));
  return [...active.keys()].sort().map((archive) => {
    const b = byArchive.get(archive);
    const w = waiting.get(archive);
    return {
      archive,
      rowsLastHour: Number(b?.rows_1h ?? 0),
      lastBatch: b ? { batch: Number(b.last_batch), rows: Number(b.last_rows), committedAt: Number(b.last_at), ageS: Math.max(0, (now - Number(b.last_at)) / 1000) } : null,
      pendingChunks: w ? w.chunks : null,
      lagS: !w ? null : w.chunks ? Math.max(0, (now - w.oldestMs) / 1000) : 0,
    };
  });
}

/**
 * Per archive, the chunks of events recorded in the 7 days before `now` that no batch committed
 * by then holds, and the newest record time of the oldest of them. Plans are looked for a day
 * further back: they are stamped by the archiver's clock, not the processors'.
 */
async function waitingChunks(client: ClickHouseClient, archives: string[], now: number): Promise<Waiting> {
  const rows = await Promise.all(
    archives.map((a) =>
      queryRows<{ chunks: string; oldest: string }>(
        client,
        `SELECT count() AS chunks, toString(toUnixTimestamp64Milli(min(wms))) AS oldest FROM (
           SELECT token, max(written_at) AS wms FROM vcam.chunks
           WHERE events > 0 AND written_at >= {nowMs:DateTime64(3)} - INTERVAL {days:UInt32} DAY AND written_at <= {nowMs:DateTime64(3)}
             AND ${notInArchive('planned_at >= {nowMs:DateTime64(3)} - INTERVAL 8 DAY AND batch IN (SELECT batch FROM vcam.archive_batches WHERE archive = {a:String} AND committed_at <= {nowMs:DateTime64(3)})')}
           GROUP BY token)`,
        { a, nowMs: dt64(now), days: CHUNK_RECORDS_DAYS },
      ),
    ),
  );
  return new Map(archives.map((a, i) => [a, { chunks: Number(rows[i]![0]?.chunks ?? 0), oldestMs: Number(rows[i]![0]?.oldest ?? 0) }]));
}

/** One geo's devices and event types over the last hour (the Geos view's drill-down). */
export async function geoDetail(client: ClickHouseClient, geoId: number, now = Date.now()): Promise<{ devices: { key: string; events: number; duplicates: number }[]; types: { key: string; events: number }[] }> {
  const p = { geo: geoId, now: Math.floor(now / 1000) };
  const [devices, types] = await Promise.all([
    queryRows<{ key: string; events: string; duplicates: string }>(
      client,
      'SELECT device_id AS key, sum(events) AS events, sum(duplicates) AS duplicates FROM vcam.device_1m WHERE geo_id = {geo:UInt32} AND bucket >= toDateTime({now:UInt32} - 3600) GROUP BY key ORDER BY events DESC LIMIT 20',
      p,
    ),
    queryRows<{ key: string; events: string }>(
      client,
      'SELECT toString(type) AS key, sum(events) AS events FROM vcam.geo_type_1m WHERE geo_id = {geo:UInt32} AND bucket >= toDateTime({now:UInt32} - 3600) GROUP BY key ORDER BY events DESC',
      p,
    ),
  ]);
  return { devices: devices.map((d) => ({ key: d.key, events: Number(d.events), duplicates: Number(d.duplicates) })), types: types.map((t) => ({ key: t.key, events: Number(t.events) })) };
}

export async function acknowledge(client: ClickHouseClient, alertId: string, by: string): Promise<void> {
  await client.insert({ table: 'vcam.alert_acks', values: [{ alert_id: alertId, acknowledged_at: dt64(Date.now()), acknowledged_by: by }], format: 'JSONEachRow' });
}
