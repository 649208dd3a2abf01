/**
 * vconsole's screen: one component per view, one data source (a snapshot every refresh), keys
 * first. What is shown is never older than it says: the status line carries the data's age,
 * and an unreachable ClickHouse is said in words, over the last numbers it gave.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import { age, fit } from './format.js';
import type { Snapshot } from './snapshot.js';
import { TOP_WINDOWS_S } from './snapshot.js';
import { Alerts } from './views/alerts.js';
import { C, ColorContext, SYMBOL } from './views/common.js';
import { filterGeos, GEO_SORTS, GeoDetail, Geos, type GeoSort } from './views/geos.js';
import { Overview } from './views/overview.js';
import { Pipeline } from './views/pipeline.js';
import { Top } from './views/top.js';

export const VIEWS = ['Overview', 'Geos', 'Top', 'Alerts', 'Pipeline'] as const;

export const KEYS: [string, string][] = [
  ['1-5, tab', 'switch view (shift-tab: back)'],
  ['↑ ↓ / j k', 'move the selection (Geos, Alerts)'],
  ['enter', "Geos: drill into the geo's devices and types"],
  ['esc', 'back out of a drill-down, the filter or this help'],
  ['/', 'Geos: filter by id, name or region (enter keeps it, esc clears)'],
  ['s', 'Geos: sort by 5m, 1m, 1h, name'],
  ['w', 'Top: window 5 min, 1 h, 1 day'],
  ['a', 'Alerts: acknowledge the selected open alert'],
  ['r', 'refresh now'],
  ['?', 'this help'],
  ['q, ctrl-c', 'quit'],
];

export interface AppProps {
  load: (o: { topWindowS: number }) => Promise<Snapshot>;
  detail: (geoId: number) => Promise<{ devices: { key: string; events: number; duplicates: number }[]; types: { key: string; events: number }[] }>;
  acknowledge: (alertId: string) => Promise<void>;
  refreshMs: number;
  color: boolean;
  now?: () => number;
}

/** The healthy status line, cut in the middle (never the alert count) to fit the width. */
function StatusLine({ host, refreshedS, reportedS, openAlerts, width }: { host: string; refreshedS: number; reportedS: number | null; openAlerts: number; width: number }) {
  const alerts = `${openAlerts} open alert${openAlerts === 1 ? '' : 's'}`;
  const middle = ` ${host} · refreshed ${age(refreshedS)} ago · processors ${age(reportedS)} ago · `;
  return (
    <Text>
      <C color="green">{SYMBOL.ok}</C>
      {fit(middle, Math.min(middle.length, width - 2 - alerts.length))}
      <C color={openAlerts ? 'red' : 'green'}>{alerts}</C>
    </Text>
  );
}

/** Network failures mean "unreachable"; anything else is ClickHouse answering with an error. */
function describeFailure(message: string): string {
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|socket hang up|Timeout|timed out/i.test(message) ? 'ClickHouse unreachable' : 'ClickHouse query failed';
}

export function App({ load, detail, acknowledge, refreshMs, color, now = Date.now }: AppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = Math.max(80, stdout?.columns ?? 80);
  // One line short of the terminal: a frame as tall as the screen makes Ink clear the whole
  // screen (and its scrollback) on every render, which flickers.
  const height = Math.max(12, (stdout?.rows ?? 24) - 1);
  const [snap, setSnap] = useState<Snapshot>();
  const [failure, setFailure] = useState<{ message: string; since: number }>();
  const [view, setView] = useState(0);
  const [help, setHelp] = useState(false);
  const [filter, setFilter] = useState('');
  const [typing, setTyping] = useState(false);
  const [sort, setSort] = useState<GeoSort>('m5');
  /** The selected item by id, so a re-sorted or shorter list keeps (or clamps) the selection. */
  const [selectedId, setSelectedId] = useState<string>();
  const [drill, setDrill] = useState<number>();
  const [drillData, setDrillData] = useState<Awaited<ReturnType<AppProps['detail']>>>();
  const [topWindow, setTopWindow] = useState(0);
  const [notice, setNotice] = useState('');
  const [, setTick] = useState(0);
  const loading = useRef(false);

  const refresh = useCallback(async () => {
    if (loading.current) return;
    loading.current = true;
    try {
      setSnap(await load({ topWindowS: TOP_WINDOWS_S[topWindow]! }));
      setFailure(undefined);
    } catch (err) {
      setFailure((f) => ({ message: (err as Error).message || String(err), since: f?.since ?? now() }));
    } finally {
      loading.current = false;
    }
  }, [load, topWindow, now]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), refreshMs);
    // The clock moves on even while a query hangs, so ages on screen stay true.
    const clock = setInterval(() => setTick((t) => t + 1), 1_000);
    return () => {
      clearInterval(timer);
      clearInterval(clock);
    };
  }, [refresh, refreshMs]);

  useEffect(() => {
    setDrillData(undefined);
    if (drill === undefined) return;
    let live = true;
    detail(drill).then(
      (d) => live && setDrillData(d),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [drill, detail]);

  useEffect(() => {
    if (!notice) return;
    const timer = setTimeout(() => setNotice(''), 4_000);
    return () => clearTimeout(timer);
  }, [notice]);

  const geos = snap ? filterGeos(snap.geos, filter, sort) : [];
  const alerts = snap?.alerts ?? [];
  const ids = view === 1 && drill === undefined ? geos.map((g) => String(g.geoId)) : view === 3 ? alerts.map((a) => a.id) : [];
  const selected = Math.max(0, ids.indexOf(selectedId ?? ''));

  // The key handler reads the current state through a ref: Ink may still hold the handler of
  // an earlier render when a key arrives while refreshes keep re-rendering.
  const live = useRef({ view, help, drill, typing, selected, geos, alerts, ids });
  live.current = { view, help, drill, typing, selected, geos, alerts, ids };
  useInput((input, key) => {
    const { view, help, drill, typing, selected, geos, alerts, ids } = live.current;
    if (typing) {
      if (key.return) setTyping(false);
      else if (key.escape) {
        setTyping(false);
        setFilter('');
      } else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1));
      else if (input && !key.ctrl && !key.meta) setFilter((f) => f + input);
      return setSelectedId(undefined);
    }
    if (input === 'q' || (key.ctrl && input === 'c')) return exit();
    if (input === '?') return setHelp((h) => !h);
    if (key.escape) {
      if (help) return setHelp(false);
      if (drill !== undefined) return setDrill(undefined);
      return setFilter('');
    }
    const go = (v: number) => {
      setView(((v % VIEWS.length) + VIEWS.length) % VIEWS.length);
      setSelectedId(undefined);
      setDrill(undefined);
      setHelp(false);
    };
    if (/^[1-5]$/.test(input)) return go(Number(input) - 1);
    if (key.tab) return go(view + (key.shift ? -1 : 1));
    if (input === 'r') return void refresh();
    // Under the help or a drill-down, the hidden list does not move.
    if (help) return;
    if (key.downArrow || input === 'j') return setSelectedId(ids[Math.min(ids.length - 1, selected + 1)]);
    if (key.upArrow || input === 'k') return setSelectedId(ids[Math.max(0, selected - 1)]);
    if (view === 1 && drill === undefined) {
      if (input === '/') return setTyping(true);
      if (input === 's') return setSort((s) => GEO_SORTS[(GEO_SORTS.indexOf(s) + 1) % GEO_SORTS.length]!);
      if (key.return && geos[selected]) return setDrill(geos[selected]!.geoId);
    }
    if (view === 2 && input === 'w') return setTopWindow((w) => (w + 1) % TOP_WINDOWS_S.length);
    if (view === 3 && input === 'a') {
      const a = alerts[selected];
      if (!a || a.state !== 'open') return setNotice('select an open alert to acknowledge');
      acknowledge(a.id).then(
        () => {
          setNotice(`acknowledged ${a.kind} ${a.subject}`);
          void refresh();
        },
        (err: Error) => setNotice(`could not acknowledge: ${err.message}`),
      );
    }
  });

  const bodyHeight = height - 4;
  const t = now();
  const staleS = snap ? (t - snap.at) / 1000 : 0;
  const stale = !failure && snap && staleS * 1000 > Math.max(3 * refreshMs, 3_000);
  const host = snap?.clickhouseUrl.replace(/^https?:\/\//, '') ?? '';
  const status = failure ? (
    <C color="red">{fit(`${SYMBOL.bad} ${describeFailure(failure.message)} for ${age((t - failure.since) / 1000)} (${failure.message})${snap ? ` — numbers below are ${age(staleS)} old` : ''}`, width)}</C>
  ) : stale ? (
    <C color="yellow">{fit(`${SYMBOL.warn} ${host}: no answer for ${age(staleS)} — numbers below are ${age(staleS)} old`, width)}</C>
  ) : snap ? (
    <StatusLine host={host} refreshedS={staleS} reportedS={snap.overview.statusAgeS} openAlerts={snap.overview.openAlerts} width={width} />
  ) : (
    <Text>connecting…</Text>
  );

  let body: React.ReactNode = null;
  if (help) {
    body = (
      <Box flexDirection="column">
        <C bold>keys</C>
        {KEYS.map(([k, what]) => (
          <Text key={k}>{`  ${k.padEnd(12)}${what}`}</Text>
        ))}
      </Box>
    );
  } else if (snap) {
    const geoNames = new Map(snap.geos.map((g) => [String(g.geoId), g.name]));
    const drilled = drill !== undefined ? snap.geos.find((g) => g.geoId === drill) : undefined;
    body = [
      <Overview s={snap} width={width} />,
      drilled ? <GeoDetail geo={drilled} detail={drillData} /> : <Geos geos={geos} selected={selected} sort={sort} filter={filter} height={bodyHeight - 1} width={width} />,
      <Top s={snap} geoNames={geoNames} width={width} />,
      <Alerts alerts={alerts} selected={selected} now={t} height={bodyHeight - 1} width={width} />,
      <Pipeline s={snap} height={bodyHeight} width={width} />,
    ][view];
  }

  const hints = ['', drill !== undefined ? 'esc back' : `/ filter${filter ? ` "${filter}"` : ''}  s sort  enter drill`, 'w window', 'a acknowledge', ''][view];
  return (
    <ColorContext.Provider value={color}>
      <Box flexDirection="column" width={width} height={height}>
        <Text>
          <C bold>vcam </C>
          {VIEWS.map((v, i) => (
            <C key={v} inverse={i === view} bold={i === view}>{` ${i + 1} ${v} `}</C>
          ))}
          <Text>{'  ? help  q quit'}</Text>
        </Text>
        <Box>{status}</Box>
        <Box flexDirection="column" height={bodyHeight} overflow="hidden">
          {body}
        </Box>
        <Text>{fit(typing ? `filter: ${filter}▏ (enter keeps it, esc clears)` : notice || hints || '', width)}</Text>
      </Box>
    </ColorContext.Provider>
  );
}
