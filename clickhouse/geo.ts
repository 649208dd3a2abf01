/**
 * The geo reference CSV: `geoId,geoName,region` with a header line. A load replaces the
 * previous one whole (the processor reads only the latest load). Bad lines are refused with
 * their line number and reason; nothing is loaded unless every line is good.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../common/errors.js';
import { dt64 } from './schema.js';

export interface GeoRow {
  geo_id: number;
  geo_name: string;
  region: string;
}

export function parseGeoCsv(text: string, source = 'CSV'): GeoRow[] {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.trim().toLowerCase().replace(/\s/g, '');
  if (header !== 'geoid,geoname,region' && header !== 'geo_id,geo_name,region') {
    throw new ConfigError(`${source}: the first line must be the header "geoId,geoName,region"`);
  }
  const rows: GeoRow[] = [];
  const errors: string[] = [];
  const seen = new Set<number>();
  lines.slice(1).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const fields = splitCsvLine(line);
    const at = `line ${i + 2}`;
    if (fields.length !== 3) return errors.push(`${at}: expected 3 fields (geoId,geoName,region), found ${fields.length}`);
    const [id, name, region] = fields as [string, string, string];
    const geoId = Number(id);
    if (!/^\d+$/.test(id) || geoId > 4294967295) return errors.push(`${at}: geoId "${id}" is not an unsigned 32-bit integer`);
    if (!name) return errors.push(`${at}: geoName is empty`);
    if (seen.has(geoId)) return errors.push(`${at}: geoId ${geoId} appears twice`);
    seen.add(geoId);
    rows.push({ geo_id: geoId, geo_name: name, region });
  });
  if (errors.length) throw new ConfigError(`${source}: ${errors.length} bad line(s), nothing loaded:\n  ${errors.slice(0, 20).join('\n  ')}`);
  // Loading nothing would leave the previous load in place while saying it was replaced.
  if (rows.length === 0) throw new ConfigError(`${source}: no geo lines after the header, nothing loaded`);
  return rows;
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

export async function loadGeo(client: ClickHouseClient, rows: GeoRow[], at = Date.now()): Promise<void> {
  const loadedAt = dt64(at);
  await client.insert({ table: 'vcam.geo', values: rows.map((r) => ({ ...r, loaded_at: loadedAt })), format: 'JSONEachRow' });
}
