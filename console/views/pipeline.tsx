import { Box, Text } from 'ink';
import { age, fit, num } from '../format.js';
import type { Snapshot } from '../snapshot.js';
import { C, SYMBOL, severityColor } from './common.js';

/** `vcam archive --max-lag`'s default. An archiver set otherwise alerts at its own bound, and its alert shows below the tables. */
const ARCHIVE_LAG_BOUND_S = 900;

/**
 * The archive: each table with its last hour, last batch and lag, then its open alerts. Alerts
 * name an archive by URL and tables are known by id (ClickHouse holds nothing linking the two),
 * so the alerts are listed with their subject under the tables, not beside one of them.
 */
function Archive({ a, now, width }: { a: Snapshot['pipeline']['archive']; now: number; width: number }) {
  const utc = (ms: number) => new Date(ms).toISOString().slice(11, 19);
  return (
    <>
      {a.tables.length === 0 ? (
        <Text>{a.migrated ? 'archive: none yet' : 'archive: none yet (this database predates it; `vcam migrate` adds its tables)'}</Text>
      ) : (
        <C bold>{`${'archive'.padEnd(28)}${'rows 1h'.padStart(10)}  ${'last batch (UTC)'.padEnd(26)}${'lag'.padStart(8)}`}</C>
      )}
      {a.tables.map((t) => (
        <Text key={t.archive}>
          <C color={t.lagS === null ? 'red' : t.lagS > ARCHIVE_LAG_BOUND_S ? 'yellow' : 'green'}>{t.lagS === null ? SYMBOL.bad : t.lagS > ARCHIVE_LAG_BOUND_S ? SYMBOL.warn : SYMBOL.ok}</C>
          {` ${t.archive.slice(0, 26).padEnd(27)}${num(t.rowsLastHour).padStart(10)}  ${(t.lastBatch ? `#${t.lastBatch.batch} ${utc(t.lastBatch.committedAt)} (${age(t.lastBatch.ageS)} ago)` : 'none committed yet').padEnd(26)}${(t.lagS === null ? 'unknown' : age(t.lagS)).padStart(8)}`}
        </Text>
      ))}
      {a.tables.length > 0 && a.alerts.length === 0 && <Text>{`  ${SYMBOL.ok} no archive alert open`}</Text>}
      {a.alerts.map((al) => (
        <Text key={`${al.kind}/${al.subject}`}>
          {'  '}
          <C color={severityColor(al.severity)}>{al.severity === 'critical' ? SYMBOL.bad : SYMBOL.warn}</C>
          {fit(` ${al.kind} ${al.subject}, open ${age((now - al.openedAt) / 1000)}: ${al.message}`, width - 3)}
        </Text>
      ))}
    </>
  );
}

/** Lines the archive takes: a header or "none yet", a line per table, and its alerts (or the line saying there are none). */
function archiveLines(a: Snapshot['pipeline']['archive']): number {
  return 1 + a.tables.length + (a.alerts.length || (a.tables.length ? 1 : 0));
}

export function Pipeline({ s, height, width }: { s: Snapshot; height: number; width: number }) {
  const agents = s.pipeline.components.filter((c) => c.kind === 'agent');
  const others = s.pipeline.components.filter((c) => c.kind !== 'agent');
  const parts = s.pipeline.partitions.slice(0, Math.max(3, height - agents.length - others.length - archiveLines(s.pipeline.archive) - 4));
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
      <Archive a={s.pipeline.archive} now={s.at} width={width} />
    </Box>
  );
}
