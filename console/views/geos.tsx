import { Box, Text } from 'ink';
import { fit, num, sparkline } from '../format.js';
import type { GeoRow } from '../snapshot.js';
import { C } from './common.js';

export type GeoSort = 'm5' | 'm1' | 'h1' | 'name';
export const GEO_SORTS: GeoSort[] = ['m5', 'm1', 'h1', 'name'];

/** The console's filter: plain text matched against geo id, name and region, client-side. */
export function filterGeos(geos: GeoRow[], filter: string, sort: GeoSort): GeoRow[] {
  const f = filter.trim().toLowerCase();
  const kept = f ? geos.filter((g) => `${g.geoId} ${g.name} ${g.region}`.toLowerCase().includes(f)) : geos;
  return [...kept].sort((a, b) => (sort === 'name' ? a.name.localeCompare(b.name) : b[sort] - a[sort] || a.geoId - b.geoId));
}

export function Geos({ geos, selected, sort, filter, height, width }: { geos: GeoRow[]; selected: number; sort: GeoSort; filter: string; height: number; width: number }) {
  const nameW = Math.max(12, Math.min(28, width - 62));
  const sparkW = Math.max(8, Math.min(15, width - nameW - 47));
  const first = Math.max(0, Math.min(selected - Math.floor(height / 2), geos.length - height));
  const head = (key: GeoSort, label: string, w: number) => (key === sort ? `${label}▼`.padStart(w) : label.padStart(w));
  return (
    <Box flexDirection="column">
      <C bold>{`${'geo'.padEnd(6)} ${fit('name', nameW)} ${fit('region', 10)}${head('m1', '1m', 8)}${head('m5', '5m', 9)}${head('h1', '1h', 10)}  ${'15 min'.padEnd(sparkW)}`}</C>
      {geos.length === 0 && <Text>{filter ? `no geo matches "${filter}"` : 'no events in the last hour'}</Text>}
      {geos.slice(first, first + height).map((g, i) => (
        <C key={g.geoId} inverse={first + i === selected}>
          {`${String(g.geoId).padEnd(6)} ${fit(g.name, nameW)} ${fit(g.region, 10)}${num(g.m1).padStart(8)}${num(g.m5).padStart(9)}${num(g.h1).padStart(10)}  ${sparkline(g.spark, sparkW)}`}
        </C>
      ))}
    </Box>
  );
}

export function GeoDetail({ geo, detail }: { geo: GeoRow; detail?: { devices: { key: string; events: number; duplicates: number }[]; types: { key: string; events: number }[] } }) {
  return (
    <Box flexDirection="column">
      <C bold>{`geo ${geo.geoId} ${geo.name} (${geo.region || 'no region'}) — last hour: ${num(geo.h1)} events`}</C>
      {!detail && <Text>loading…</Text>}
      {detail && (
        <Box>
          <Box flexDirection="column" width={44}>
            <C bold>{`${'device'.padEnd(24)}${'events'.padStart(9)}${'dups'.padStart(8)}`}</C>
            {detail.devices.slice(0, 14).map((d) => (
              <Text key={d.key}>{`${fit(d.key, 24)}${num(d.events).padStart(9)}${num(d.duplicates).padStart(8)}`}</Text>
            ))}
          </Box>
          <Box flexDirection="column">
            <C bold>{`${'type'.padEnd(12)}${'events'.padStart(9)}`}</C>
            {detail.types.map((t) => (
              <Text key={t.key}>{`${fit(t.key, 12)}${num(t.events).padStart(9)}`}</Text>
            ))}
          </Box>
        </Box>
      )}
    </Box>
  );
}
