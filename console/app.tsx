/**
 * vconsole's screen: one component per view, one data source (a snapshot every refresh), keys
 * first. What is shown is never older than it says: the status line carries the data's age,
 * and an unreachable ClickHouse is said in words, over the last numbers it gave.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import { age } from './format.js';
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
  ['enter', 'Geos: drill into the geo\'s devices and types'],
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

export function App({ load, detail, acknowledge, refreshMs, color, now = Date.now }: AppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = Math.max(80, stdout?.columns ?? 80);
  const height = Math.max(24, stdout?.rows ?? 24);
  const [snap, setSnap] = useState<Snapshot>();
  const [failure, setFailure] = useState<{ message: string; since: number }>();
  const [view, setView] = useState(0);
  const [help, setHelp] = useState(false);
  const [filter, setFilter] = useState('');
  const [typing, setTyping] = useState(false);
  const [sort, setSort] = useState<GeoSort>('m5');
  const [selected, setSelected] = useState(0);
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
      setTick((t) => t + 1);
    }
  }, [load, topWindow, now]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), refreshMs);
    return () => clearInterval(timer);
  }, [refresh, refreshMs]);

  useEffect(() => {
    if (drill === undefined) return setDrillData(undefined);
    let live = true;
    detail(drill).then((d) => live && setDrillData(d), () => undefined);
    return () => {
      live = false;
    };
  }, [drill, detail, snap?.at]);

  const geos = snap ? filterGeos(snap.geos, filter, sort) : [];
  const alerts = snap?.alerts ?? [];
  const listLength = view === 1 ? geos.length : view === 3 ? alerts.length : 0;

  // The key handler reads the current state through a ref: Ink may still hold the handler of
  // an earlier render when a key arrives while refreshes keep re-rendering.
  const live = useRef({ view, help, drill, typing, selected, geos, alerts, listLength });
  live.current = { view, help, drill, typing, selected, geos, alerts, listLength };
  useInput((input, key) => {
    const { view, help, drill, typing, selected, geos, alerts, listLength } = live.current;
    if (typing) {
      if (key.return) setTyping(false);
      else if (key.escape) {
        setTyping(false);
        setFilter('');
      }
      else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1));
      else if (input && !key.ctrl && !key.meta) setFilter((f) => f + input);
      setSelected(0);
      return;
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
      setSelected(0);
      setDrill(undefined);
      setHelp(false);
    };
    if (/^[1-5]$/.test(input)) return go(Number(input) - 1);
    if (key.tab) return go(view + (key.shift ? -1 : 1));
    if (input === 'r') return void refresh();
    if (key.downArrow || input === 'j') return setSelected((s) => Math.min(Math.max(0, listLength - 1), s + 1));
    if (key.upArrow || input === 'k') return setSelected((s) => Math.max(0, s - 1));
    if (view === 1 && input === '/') {
      setTyping(true);
      return setDrill(undefined);
    }
    if (view === 1 && input === 's') return setSort((s) => GEO_SORTS[(GEO_SORTS.indexOf(s) + 1) % GEO_SORTS.length]!);
    if (view === 1 && key.return && geos[selected]) return setDrill(geos[selected]!.geoId);
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

  const bodyHeight = height - 5;
  const t = now();
  const status = failure ? (
    <C color="red">{`${SYMBOL.bad} ClickHouse unreachable for ${age((t - failure.since) / 1000)} (${failure.message.slice(0, width - 60)})${snap ? ` — numbers below are ${age((t - snap.at) / 1000)} old` : ''}`}</C>
  ) : snap ? (
    <Text>
      <C color="green">{SYMBOL.ok}</C>
      {` ${snap.clickhouseUrl.replace(/^https?:\/\//, '')} · refreshed ${age((t - snap.at) / 1000)} ago · processors reported ${age(snap.overview.statusAgeS)} ago · `}
      <C color={snap.overview.openAlerts ? 'red' : 'green'}>{`${snap.overview.openAlerts} open alert${snap.overview.openAlerts === 1 ? '' : 's'}`}</C>
    </Text>
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
      <Pipeline s={snap} height={bodyHeight} />,
    ][view];
  }

  const hints = ['', typing ? `filter: ${filter}▏ (enter keep, esc clear)` : `/ filter${filter ? ` "${filter}"` : ''}  s sort  enter drill`, 'w window', 'a acknowledge', ''][view];
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
        <Text>{notice || hints}</Text>
      </Box>
    </ColorContext.Provider>
  );
}
