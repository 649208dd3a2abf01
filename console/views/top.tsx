import { Box, Text } from 'ink';
import { age, fit, num } from '../format.js';
import type { Snapshot } from '../snapshot.js';
import { C } from './common.js';

export function Top({ s, geoNames, width }: { s: Snapshot; geoNames: Map<string, string>; width: number }) {
  const colW = Math.max(24, Math.floor((width - 2) / 3));
  const column = (title: string, items: { key: string; events: number }[], label: (k: string) => string) => (
    <Box flexDirection="column" width={colW}>
      <C bold>{fit(title, colW - 1)}</C>
      {items.length === 0 && <Text>none</Text>}
      {items.map((it, i) => (
        <Text key={it.key}>{`${String(i + 1).padStart(2)} ${fit(label(it.key), colW - 13)}${num(it.events).padStart(9)}`}</Text>
      ))}
    </Box>
  );
  return (
    <Box flexDirection="column">
      <Text>{`top ${s.top.geos.length || ''} over the last ${age(s.top.windowS)} (w: change window)`}</Text>
      <Box>
        {column('geos', s.top.geos, (k) => `${k} ${geoNames.get(k) ?? ''}`)}
        {column('devices', s.top.devices, (k) => k)}
        {column('types', s.top.types, (k) => k)}
      </Box>
    </Box>
  );
}
