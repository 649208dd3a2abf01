/**
 * A batch's data files: ClickHouse writes each date's rows as Parquet (`FORMAT Parquet` over
 * HTTP, so no host path is involved and any ClickHouse server will do), vcam uploads it under a
 * fresh name and describes it with protocol-shaped statistics for the Delta log.
 *
 * Why not ClickHouse's own Delta writer (`deltaLakeLocal`, allow_delta_lake_writes): it commits
 * with no `txn` action (a retried insert is a second commit), writes stats as
 * `{"stats_json":…}` that readers skip, writes modificationTime in seconds, and reaches the host
 * through a table function the embedded server refuses (docs/architecture.md).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import type { ObjectStore } from '../common/objectstore.js';
import type { AddAction, Field, TableSchema } from './delta.js';
import { chunkRowsFilter, type ArchiveChunk } from './ledger.js';

interface Column extends Field {
  /** The value as written, from vcam.events' column of the same name. */
  expr: string;
  /** Kept in min/max statistics (strings too long to bound, and booleans, are not). */
  minmax: boolean;
}

export const PARTITION_COLUMN = 'event_date';

/**
 * vcam.events as the archive keeps it. Types are Delta's: unsigned integers become the signed
 * type that holds them (Delta has no unsigned types), times become microsecond UTC timestamps.
 * A change here is a change of the table's schema: the archiver refuses a table whose schema
 * differs (archive/archiver.ts), so it comes with a migration of the table, never silently.
 */
const COLUMNS: Column[] = [
  { name: 'event_id', type: 'string', nullable: false, expr: 'event_id', minmax: true },
  { name: 'device_id', type: 'string', nullable: false, expr: 'device_id', minmax: true },
  { name: 'geo_id', type: 'long', nullable: false, expr: 'toInt64(geo_id)', minmax: true },
  { name: 'geo_name', type: 'string', nullable: false, expr: 'geo_name', minmax: true },
  { name: 'region', type: 'string', nullable: false, expr: 'toString(region)', minmax: true },
  { name: 'ts', type: 'timestamp', nullable: false, expr: "toDateTime64(ts, 6, 'UTC')", minmax: true },
  { name: 'type', type: 'string', nullable: false, expr: 'toString(type)', minmax: true },
  { name: 'late', type: 'boolean', nullable: false, expr: 'late', minmax: false },
  { name: 'confidence', type: 'float', nullable: true, expr: 'confidence', minmax: true },
  { name: 'attrs', type: 'string', nullable: false, expr: 'attrs', minmax: false },
  { name: 'agent_id', type: 'string', nullable: false, expr: 'toString(agent_id)', minmax: true },
  { name: 'agent_seq', type: 'long', nullable: false, expr: 'toInt64(agent_seq)', minmax: true },
  { name: 'received_at', type: 'timestamp', nullable: false, expr: "toDateTime64(received_at, 6, 'UTC')", minmax: true },
  { name: 'kafka_partition', type: 'integer', nullable: false, expr: 'toInt32(kafka_partition)', minmax: true },
  { name: 'kafka_offset', type: 'long', nullable: false, expr: 'toInt64(kafka_offset)', minmax: true },
  { name: 'processed_at', type: 'timestamp', nullable: false, expr: "toDateTime64(processed_at, 6, 'UTC')", minmax: true },
];

export const ARCHIVE_SCHEMA: TableSchema = {
  fields: [...COLUMNS.map(({ name, type, nullable }) => ({ name, type, nullable })), { name: PARTITION_COLUMN, type: 'date', nullable: false }],
  partitionColumns: [PARTITION_COLUMN],
};

/** Strings longer than this get no min/max: a cut max would no longer bound the column. */
const MAX_STAT_STRING = 64;

export interface WrittenFiles {
  adds: AddAction[];
  rows: number;
  bytes: number;
}

/**
 * Writes the rows of `chunks` as one Parquet file per event date into `store`, named for the
 * batch and a fresh UUID (never overwritten: a redone batch writes new files, and what the cut
 * attempt left is not in the log, so a vacuum removes it).
 */
export async function writeBatchFiles(client: ClickHouseClient, store: ObjectStore, tmpDir: string, batch: number, chunks: ArchiveChunk[]): Promise<WrittenFiles> {
  const { where, params } = chunkRowsFilter(chunks);
  const source = `(SELECT * FROM vcam.events WHERE ${where})`;
  const dates = await dateStats(client, source, params);
  const adds: AddAction[] = [];
  let bytes = 0;
  for (const d of dates) {
    const key = `${PARTITION_COLUMN}=${d.date}/part-b${batch}-${randomUUID()}.zstd.parquet`;
    const tmp = join(tmpDir, `${randomUUID()}.parquet`);
    try {
      const result = await client.exec({
        query: `SELECT ${COLUMNS.map((c) => `${c.expr} AS ${c.name}`).join(', ')} FROM ${source} WHERE toDate(ts) = {date:Date} ORDER BY device_id, ts, event_id FORMAT Parquet`,
        query_params: { ...params, date: d.date },
        clickhouse_settings: { output_format_parquet_compression_method: 'zstd', output_format_parquet_string_as_string: 1 },
      });
      await pipeline(result.stream, createWriteStream(tmp));
      const size = await store.putFile(key, tmp);
      bytes += size;
      adds.push({ path: key, partitionValues: { [PARTITION_COLUMN]: d.date }, size, modificationTime: Date.now(), dataChange: true, stats: d.stats });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }
  return { adds, rows: dates.reduce((n, d) => n + d.rows, 0), bytes };
}

/** Per event date: its rows and the Delta statistics of its file, in one scan. */
async function dateStats(client: ClickHouseClient, source: string, params: Record<string, unknown>): Promise<{ date: string; rows: number; stats: string }[]> {
  const bounded = COLUMNS.filter((c) => c.minmax);
  const value = (c: Column, agg: 'min' | 'max') => (c.type === 'timestamp' ? `toUnixTimestamp64Milli(${agg}(${c.name}))` : `${agg}(${c.expr})`);
  const rows = await (
    await client.query({
      query: `SELECT toString(toDate(ts)) AS date, count() AS rows,
                ${bounded.map((c) => `${value(c, 'min')} AS min_${c.name}, ${value(c, 'max')} AS max_${c.name}`).join(', ')},
                ${COLUMNS.filter((c) => c.nullable)
                  .map((c) => `countIf(isNull(${c.name})) AS nulls_${c.name}`)
                  .join(', ')}
              FROM ${source} GROUP BY date ORDER BY date`,
      query_params: params,
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    })
  ).json<Record<string, unknown>>();
  return rows.map((r) => {
    const rowsN = Number(r.rows);
    const minValues: Record<string, unknown> = {};
    const maxValues: Record<string, unknown> = {};
    const nullCount: Record<string, number> = {};
    for (const c of COLUMNS) {
      const nulls = c.nullable ? Number(r[`nulls_${c.name}`]) : 0;
      nullCount[c.name] = nulls;
      // min/max skip nulls; a column of nulls only has no bounds.
      if (!c.minmax || nulls === rowsN) continue;
      const [lo, hi] = [r[`min_${c.name}`], r[`max_${c.name}`]];
      if (c.type === 'string' && (String(lo).length > MAX_STAT_STRING || String(hi).length > MAX_STAT_STRING)) continue;
      minValues[c.name] = c.type === 'timestamp' ? new Date(Number(lo)).toISOString() : lo;
      maxValues[c.name] = c.type === 'timestamp' ? new Date(Number(hi)).toISOString() : hi;
    }
    return { date: String(r.date), rows: rowsN, stats: JSON.stringify({ numRecords: rowsN, minValues, maxValues, nullCount }) };
  });
}
