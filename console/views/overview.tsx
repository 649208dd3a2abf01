import { Box, Text } from 'ink';
import { age, ms, num, pct, sparkline } from '../format.js';
import type { Snapshot } from '../snapshot.js';
import { C, SYMBOL } from './common.js';

function lagText(o: Snapshot['overview']) {
  if (o.lagEvents === null) return o.lagNote.startsWith('single-node') ? <Text>{`n/a (${o.lagNote})`}</Text> : <C color="red">{`${SYMBOL.bad} unknown: ${o.lagNote}`}</C>;
  return <C color={o.lagEvents > 100_000 ? 'red' : o.lagEvents > 10_000 ? 'yellow' : 'green'}>{`${num(o.lagEvents)} events`}</C>;
}

export function Overview({ s, width }: { s: Snapshot; width: number }) {
  const o = s.overview;
  const row = (label: string, value: React.ReactNode) => (
    <Box>
      <Box width={24}>
        <Text>{label}</Text>
      </Box>
      <Box>{typeof value === 'string' ? <Text>{value}</Text> : value}</Box>
    </Box>
  );
  const procs = s.pipeline.processors;
  return (
    <Box flexDirection="column">
      {row('events/s (processed)', <Text>{`${num(o.eventsPerS).padStart(8)}  ${sparkline(o.rateSpark, Math.max(10, Math.min(30, width - 57)))}  (5 min, event time)`}</Text>)}
      {row('end-to-end latency', o.latencyMs ? `p50 ${ms(o.latencyMs.p50)}   p99 ${ms(o.latencyMs.p99)}  (slowest processor)` : 'none: no processor counted events lately')}
      {row('consumer lag', lagText(o))}
      {row('duplicates', `${pct(o.duplicateRate)} of arrivals (5 min)`)}
      {row('late', `${pct(o.lateRate)} of counted (5 min)`)}
      {row('dead letters', `${num(o.dlqPerS)}/s (5 min)`)}
      {row('open alerts', <C color={o.openAlerts ? 'red' : 'green'}>{`${o.openAlerts ? SYMBOL.open : SYMBOL.ok} ${o.openAlerts}`}</C>)}
      {row('processors', procs.length ? `${procs.filter((p) => p.alive).length}/${procs.length} alive` : 'none reporting')}
      {procs.map((p) => (
        <Text key={p.instance}>
          {'  '}
          <C color={p.alive ? 'green' : 'red'}>{p.alive ? SYMBOL.ok : SYMBOL.bad}</C>
          {` processor ${p.instance}  last status ${age(p.lastSeenS)} ago`}
        </Text>
      ))}
      {s.pipeline.components.map((c) => (
        <Text key={c.url}>
          {'  '}
          <C color={c.up ? 'green' : 'red'}>{c.up ? SYMBOL.ok : SYMBOL.bad}</C>
          {` ${c.kind}${c.name ? ` ${c.name}` : ''}  ${c.url}${c.up ? '' : `  DOWN (${c.error})`}`}
        </Text>
      ))}
    </Box>
  );
}
