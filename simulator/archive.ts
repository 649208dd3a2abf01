/**
 * The archive against the ground truth (`vcam verify --archive`): the Delta table on the local
 * S3 is read by ClickHouse's Delta reader (delta-kernel-rs, inside chDB in this process), not by
 * vcam's own log code, and counted per geo-minute and per device like ClickHouse's tables.
 */
import { Session } from 'chdb';
import type { Ledger } from './ledger.js';
import { cellDiff } from './compare.js';

export interface ArchiveSeen {
  rows: number;
  distinct: number;
  geoMinute: Map<string, number>;
  perDevice: Map<string, number>;
}

export interface ArchiveReport {
  rows: number;
  distinct: number;
  lost: number;
  doubled: number;
  /** From ClickHouse holding every event to the archive holding them all, seconds. */
  lagS: number;
  mismatches: string[];
}

/** Reads the Delta table at `url` (http://host:port/bucket/prefix/) with the given S3 credentials. */
export async function observeArchive(url: string, accessKeyId: string, secretAccessKey: string): Promise<ArchiveSeen> {
  const session = new Session();
  try {
    const rows = async <T>(sql: string) =>
      (await session.queryBindAsync(sql, { url, accessKeyId, secretAccessKey }, { format: 'JSONEachRow' }))
        .text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as T);
    const table = 'deltaLake({url:String}, {accessKeyId:String}, {secretAccessKey:String})';
    const [totals] = await rows<{ rows: string; distinct: string }>(`SELECT count() AS rows, uniqExact(event_id) AS distinct FROM ${table}`);
    const geo = await rows<{ g: number; m: number; n: string }>(`SELECT geo_id AS g, toUInt32(toStartOfMinute(ts)) AS m, count() AS n FROM ${table} GROUP BY g, m`);
    const dev = await rows<{ d: string; n: string }>(`SELECT device_id AS d, count() AS n FROM ${table} GROUP BY d`);
    return {
      rows: Number(totals?.rows ?? 0),
      distinct: Number(totals?.distinct ?? 0),
      geoMinute: new Map(geo.map((r) => [`${r.g}@${r.m}`, Number(r.n)])),
      perDevice: new Map(dev.map((r) => [r.d, Number(r.n)])),
    };
  } finally {
    session.cleanup();
  }
}

export function compareArchive(ledger: Ledger, seen: ArchiveSeen, lagS: number): ArchiveReport {
  const expected = new Map<string, number>();
  for (const [g, m] of ledger.perGeoMinute) for (const [minute, n] of m) expected.set(`${g}@${minute}`, n);
  const mismatches: string[] = [];
  const byGeo = cellDiff('archive geo@minute', expected, seen.geoMinute, mismatches, 'the archive');
  const byDevice = cellDiff('archive device', ledger.perDevice, seen.perDevice, mismatches, 'the archive');
  return {
    rows: seen.rows,
    distinct: seen.distinct,
    lost: Math.max(byGeo.lost, byDevice.lost, ledger.unique - seen.distinct, 0),
    doubled: Math.max(byGeo.extra, byDevice.extra, seen.rows - seen.distinct, 0),
    lagS,
    mismatches,
  };
}
