/**
 * The geo reference file: `geoId,geoName,region`, as CSV with a header line or as Parquet with
 * those columns. A load replaces the previous one whole (the processor reads only the latest
 * load). Bad lines (CSV) or rows (Parquet) are refused with their number and reason; nothing is
 * loaded unless every one is good. Both formats go through the same checks (checkGeoRows).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { Session } from 'chdb';
import { ConfigError } from '../common/errors.js';
import { dt64 } from './schema.js';

export interface GeoRow {
  geo_id: number;
  geo_name: string;
  region: string;
}

/** The header a CSV load takes and a CSV export writes, and the Parquet column names. */
export const GEO_COLUMNS = ['geoId', 'geoName', 'region'] as const;
/** The other spelling either format may use (the table's own column names). */
const GEO_ALIASES = ['geo_id', 'geo_name', 'region'] as const;

/** One data line or row as read, before its checks; `at` names it in messages ("line 7", "row 3"). NULL is Parquet's. */
interface RawGeo {
  at: string;
  fields: readonly (string | null)[];
}

/**
 * The checks every geo file passes, whatever its format. Errors for all bad rows are collected
 * before refusing, so one run of the command shows what to fix.
 */
function checkGeoRows(raw: Iterable<RawGeo>, source: string, unit: 'line' | 'row'): GeoRow[] {
  const rows: GeoRow[] = [];
  const errors: string[] = [];
  const seen = new Set<number>();
  for (const { at, fields } of raw) {
    if (fields.length !== 3) {
      errors.push(`${at}: expected 3 fields (geoId,geoName,region), found ${fields.length}`);
      continue;
    }
    // A CSV field is trimmed as it is split; a Parquet value is trimmed here, so that both formats load the same text.
    const [id, name, region] = fields.map((f) => f?.trim() ?? null) as [string | null, string | null, string | null];
    const geoId = Number(id);
    if (id === null) errors.push(`${at}: geoId is null`);
    else if (!/^\d+$/.test(id) || geoId > 4294967295) errors.push(`${at}: geoId "${id}" is not an unsigned 32-bit integer`);
    else if (!name) errors.push(`${at}: geoName is empty`);
    // A CSV line cannot hold one, so a name with one would load from Parquet and then not round-trip through a CSV export.
    else if (/[\r\n]/.test(name) || /[\r\n]/.test(region ?? '')) errors.push(`${at}: ${/[\r\n]/.test(name) ? 'geoName' : 'region'} contains a line break`);
    else if (seen.has(geoId)) errors.push(`${at}: geoId ${geoId} appears twice`);
    else {
      seen.add(geoId);
      rows.push({ geo_id: geoId, geo_name: name, region: region ?? '' });
    }
  }
  if (errors.length) throw new ConfigError(`${source}: ${errors.length} bad ${unit}(s), nothing loaded:\n  ${errors.slice(0, 20).join('\n  ')}`);
  // Loading nothing would leave the previous load in place while saying it was replaced.
  if (rows.length === 0) throw new ConfigError(unit === 'line' ? `${source}: no geo lines after the header, nothing loaded` : `${source}: no geo rows, nothing loaded`);
  return rows;
}

export function parseGeoCsv(text: string, source = 'CSV'): GeoRow[] {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.trim().toLowerCase().replace(/\s/g, '');
  if (header !== GEO_COLUMNS.join(',').toLowerCase() && header !== GEO_ALIASES.join(',')) {
    throw new ConfigError(`${source}: the first line must be the header "${GEO_COLUMNS.join(',')}"`);
  }
  const raw: RawGeo[] = [];
  lines.slice(1).forEach((line, i) => {
    if (line.trim()) raw.push({ at: `line ${i + 2}`, fields: splitCsvLine(line.trim()) });
  });
  return checkGeoRows(raw, source, 'line');
}

/** RFC 4180 fields on one line: quotes around a field, "" for a quote inside. */
function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(cur.trim());
  return out;
}

/** Parquet files start (and end) with these four bytes; the start is enough to say which reader to use, and a file cut short is that reader's to refuse. */
export const isParquet = (bytes: Buffer) => bytes.subarray(0, 4).toString('latin1') === 'PAR1';

/** Column types (wrappers removed) a geo column may have: an id as an integer or as text, like the CSV's; names as text. */
const ID_TYPE = /^(U?Int(8|16|32|64|128|256)|String)$/;
const TEXT_TYPE = /^String$/;
const bareType = (t: string) => t.replace(/^(Nullable|LowCardinality)\((.*)\)$/, '$2').replace(/^(Nullable|LowCardinality)\((.*)\)$/, '$2');

/**
 * Rows of a Parquet geo file, checked as a CSV's are, numbered from 1 among the data rows.
 *
 * Read by the ClickHouse engine in this process (chDB, a temporary session), not by the server
 * the load goes to: the embedded server cannot take binary request bodies (it hands the engine
 * the statement and its data as one UTF-8 string, which mangles Parquet), and asking it to read
 * the bytes from a literal would need `format()` on its allow-list. Here `file()` reads a copy
 * this process wrote; the allow-list guards the server's host from its clients, not a user's
 * own files from the user. chDB allows one data directory per process, so this cannot run in a
 * process that hosts the embedded server (chDB refuses, it does not interfere).
 */
export async function parseGeoParquet(bytes: Buffer, source = 'Parquet'): Promise<GeoRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-geo-'));
  const session = new Session();
  try {
    const path = join(dir, 'geo.parquet');
    writeFileSync(path, bytes);
    const read = async <T>(sql: string, params: Record<string, string>) => {
      try {
        return (await session.queryBindAsync(sql, { path, ...params }, { format: 'JSONEachRow' }))
          .text()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as T);
      } catch (err) {
        // The engine's refusal of the bytes (a ClickHouse error code) is the file's fault; anything else is not.
        if ((err as { clickhouseCode?: number }).clickhouseCode === undefined) throw err;
        throw new ConfigError(`${source}: cannot read it as Parquet: ${engineReason((err as Error).message).replaceAll(path, source)}`);
      }
    };
    const described = await read<{ name: string; type: string }>('DESCRIBE file({path:String}, Parquet)', {});
    // Matched as the CSV header is: either spelling, any case; anything else refused, so a misspelt column is not silently a missing one.
    const columns = new Map<string, string>();
    const problems: string[] = [];
    for (const { name, type } of described) {
      const i = GEO_COLUMNS.findIndex((c, j) => [c, GEO_ALIASES[j]].some((a) => a.toLowerCase() === name.toLowerCase()));
      const want = GEO_COLUMNS[i];
      if (want === undefined) problems.push(`column "${name}" is not one of ${GEO_COLUMNS.join(', ')}`);
      else if (columns.has(want)) problems.push(`columns "${columns.get(want)}" and "${name}" are both ${want}`);
      else {
        columns.set(want, name);
        if (!(i === 0 ? ID_TYPE : TEXT_TYPE).test(bareType(type))) problems.push(`column ${name} is ${type}; it must be ${i === 0 ? 'an integer or text' : 'text (String)'}`);
      }
    }
    for (const c of GEO_COLUMNS) if (!columns.has(c)) problems.push(`column ${c} is missing`);
    if (problems.length) throw new ConfigError(`${source}: the Parquet columns must be ${GEO_COLUMNS.join(', ')}, nothing loaded:\n  ${problems.join('\n  ')}`);
    // In the file's order (row groups may be read in parallel): row numbers in messages are the file's.
    const rows = await read<{ n: number; id: string | null; name: string | null; region: string | null }>(
      'SELECT toUInt32(_row_number + 1) AS n, toString({id:Identifier}) AS id, toString({name:Identifier}) AS name, toString({region:Identifier}) AS region FROM file({path:String}, Parquet) ORDER BY _row_number',
      { id: columns.get('geoId')!, name: columns.get('geoName')!, region: columns.get('region')! },
    );
    return checkGeoRows(
      rows.map((r) => ({ at: `row ${r.n}`, fields: [r.id, r.name, r.region] })),
      source,
      'row',
    );
  } finally {
    session.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The innermost reason in a ClickHouse error (the last `Code: N. DB::Exception:` line), without its code, type and version. */
function engineReason(message: string): string {
  const line =
    message
      .split('\n')
      .filter((l) => /^Code: \d+\. DB::Exception: /.test(l))
      .at(-1) ?? message.split('\n')[0]!;
  return line
    .replace(/^Code: \d+\. DB::Exception: /, '')
    .replace(/\s*\(version [^)]*\)\.?$/, '')
    .replace(/\.? \([A-Z_]+\)$/, '');
}

export async function loadGeo(client: ClickHouseClient, rows: GeoRow[], at = Date.now()): Promise<void> {
  const loadedAt = dt64(at);
  await client.insert({ table: 'vcam.geo', values: rows.map((r) => ({ ...r, loaded_at: loadedAt })), format: 'JSONEachRow' });
}
