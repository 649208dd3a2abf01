import { Box, Text } from 'ink';
import { age, num } from '../format.js';
import type { Snapshot } from '../snapshot.js';
import { C, SYMBOL } from './common.js';

export function Pipeline({ s, height }: { s: Snapshot; height: number }) {
  const agents = s.pipeline.components.filter((c) => c.kind === 'agent');
  const others = s.pipeline.components.filter((c) => c.kind !== 'agent');
  const parts = s.pipeline.partitions.slice(0, Math.max(3, height - agents.length - others.length - 4));
  return (
    <Box flexDirection="column">
      <C bold>{`${'processor'.padEnd(28)}${'partition'.padStart(10)}${'lag'.padStart(10)}${'events/s'.padStart(10)}${'reported'.padStart(10)}`}</C>
      {parts.length === 0 && <Text>no processor has reported in the last hour</Text>}
      {parts.map((p) => (
        <Text key={`${p.instance}/${p.partition}`}>
          <C color={p.ageS <= 30 ? 'green' : 'red'}>{p.ageS <= 30 ? SYMBOL.ok : SYMBOL.bad}</C>
          {` ${p.instance.slice(0, 26).padEnd(27)}${(p.partition < 0 ? 'local' : String(p.partition)).padStart(10)}${num(p.lag).padStart(10)}${num(p.eventsPerS).padStart(10)}${`${age(p.ageS)} ago`.padStart(10)}`}
        </Text>
      ))}
      <C bold>{`${'agent'.padEnd(28)}${'backlog'.padStart(10)}${'oldest unsent'.padStart(15)}  mqtt`}</C>
      {agents.length === 0 && <Text>no agent /metrics configured (--metrics URL,…)</Text>}
      {agents.map((a) => (
        <Text key={a.url}>
          <C color={!a.up ? 'red' : a.values.backlogEvents > 10_000 ? 'yellow' : 'green'}>{a.up ? SYMBOL.ok : SYMBOL.bad}</C>
          {a.up
            ? ` ${(a.name ?? a.url).slice(0, 26).padEnd(27)}${num(a.values.backlogEvents).padStart(10)}${age(a.values.oldestUnsentAgeS).padStart(15)}  ${a.values.connected ? 'connected' : 'DISCONNECTED'}`
            : ` ${a.url}  unreachable (${a.error})`}
        </Text>
      ))}
      {others.map((c) => (
        <Text key={c.url}>
          <C color={c.up ? 'green' : 'red'}>{c.up ? SYMBOL.ok : SYMBOL.bad}</C>
          {` ${c.kind} ${c.url}  ${
            c.up
              ? Object.entries(c.values)
                  .map(([k, v]) => `${k} ${num(v)}`)
                  .join('  ')
              : `unreachable (${c.error})`
          }`}
        </Text>
      ))}
    </Box>
  );
}
