/**
 * End to end: the highest rate the whole stack sustains, in single-node and Kafka mode, found by
 * probing with `verify()` (real child processes, ground truth compared exactly). A probe at rate R
 * is sustained when verify is ok (nothing lost, nothing counted twice, dead letters as sent), the
 * simulator really sent ≥ 95 % of R, and p99 receive→ClickHouse latency is ≤ 2 s once warmed up
 * (events received 5 s or more into the run: the first second or two pay the processor's first
 * fetches and ClickHouse's first inserts once; the whole run's p99 is reported beside). The search
 * doubles from a start rate until a probe fails, then bisects. Baseline, same run: the highest
 * rate the simulator and its agents reach with no pipeline behind them (Debian mosquitto).
 *
 * Settings (environment): VCAM_BENCH_QUICK=1 (or `-- --quick`) short probes, few steps, for smoke
 * runs; VCAM_BENCH_PROBE_S probe length; VCAM_BENCH_BUDGET_S time for the whole suite;
 * VCAM_BENCH_MODES=single-node,kafka; VCAM_BENCH_RATE=R one probe per mode at R, no search (for
 * a cost table of one change).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/query.js';
import { readSecretFile } from '../common/secrets.js';
import { PACKAGE_ROOT } from '../common/paths.js';
import { sleep } from '../common/retry.js';
import { WARMUP_MS, type Quantiles } from '../simulator/compare.js';
import { SCENARIO_DEFAULTS, type Scenario } from '../simulator/scenario.js';
import { Simulation, type Progress } from '../simulator/sim.js';
import type { Mode, Stack } from '../simulator/stack.js';
import { verify } from '../simulator/verify.js';
import { startMosquitto } from '../test/helpers/brokers.js';
import { BUDGET_US, costTable, simulatorUsPerEvent, type CostTable } from './costs.js';
import { ratio } from './measure.js';
import { Sampler, type ProcUsage } from './procstat.js';

export const P99_LIMIT_MS = 2_000;
const SENT_SHARE = 0.95;
const TARGETS: Record<Mode, number> = { 'single-node': 50_000, kafka: 10_000 };
/** Bisection stops at this granularity: finer is below the noise of a shared machine. */
const RATE_STEP = 250;
/** Stack start, drain and settle around each probe's run, for the time budget. */
const PROBE_OVERHEAD_MS = 20_000;
/**
 * Past the first 10 s of a run, a probe this far behind cannot get p99 back under 2 s: an agents'
 * backlog of 10 s of sends, or a newest row in ClickHouse received 5 s ago (everything received
 * in the 3 s after it waits over 2 s, and 3 s is over 1 % of a run).
 */
const ABANDON_GRACE_S = 10;
const ABANDON_BACKLOG_S = 10;
const ABANDON_STALE_S = 5;
export const SELF = 'simulator+agents';
const NO_LATENCY: Quantiles = { p50: NaN, p95: NaN, p99: NaN };

export interface BenchConfig {
  quick: boolean;
  probeMs: number;
  startRate: number;
  bisectSteps: number;
  maxProbesPerMode: number;
  budgetMs: number;
  drainMs: number;
  ceilingProbeMs: number;
  modes: Mode[];
  /** One probe per mode at this rate instead of the search. */
  fixedRate?: number;
}

export function benchConfig(): BenchConfig {
  const quick = process.env.VCAM_BENCH_QUICK === '1';
  const seconds = (name: string, d: number) => (Number(process.env[name]) > 0 ? Number(process.env[name]) : d) * 1000;
  const modes = (process.env.VCAM_BENCH_MODES ?? 'single-node,kafka').split(',').map((m) => m.trim()) as Mode[];
  for (const m of modes) if (m !== 'single-node' && m !== 'kafka') throw new Error(`VCAM_BENCH_MODES: unknown mode ${m} (single-node, kafka)`);
  const fixedRate = process.env.VCAM_BENCH_RATE === undefined ? undefined : Number(process.env.VCAM_BENCH_RATE);
  if (fixedRate !== undefined && !(Number.isInteger(fixedRate) && fixedRate > 0)) throw new Error(`VCAM_BENCH_RATE: expected events per second (a positive integer), got ${process.env.VCAM_BENCH_RATE}`);
  return {
    quick,
    probeMs: seconds('VCAM_BENCH_PROBE_S', quick ? 5 : 30),
    // 2,500 doubles onto 10,000, the rate the memory suite reads RSS at, so it can reuse that probe.
    startRate: 2_500,
    bisectSteps: quick ? 0 : 3,
    maxProbesPerMode: quick ? 2 : 10,
    budgetMs: seconds('VCAM_BENCH_BUDGET_S', quick ? 180 : 720),
    drainMs: quick ? 30_000 : 60_000,
    ceilingProbeMs: quick ? 3_000 : 8_000,
    modes,
    fixedRate,
  };
}

/**
 * The stack's children run the compiled dist/ as production does, unless dist/ is older than the
 * sources (a bench of stale code would measure the wrong thing): then the sources, through tsx.
 */
let code: string | undefined;

export function componentCode(): string {
  return (code ??= chooseComponentCode());
}

function chooseComponentCode(): string {
  if (process.env.VCAM_FROM_SOURCE === '1') return 'TypeScript sources through tsx (VCAM_FROM_SOURCE=1)';
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(PACKAGE_ROOT, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (/\.tsx?$/.test(e.name) && !/\.test\.tsx?$/.test(e.name)) {
        const built = join(PACKAGE_ROOT, 'dist', rel.replace(/\.tsx?$/, '.js'));
        let fresh = false;
        try {
          fresh = statSync(built).mtimeMs >= statSync(join(PACKAGE_ROOT, rel)).mtimeMs;
        } catch {
          // not built
        }
        if (!fresh) stale.push(rel);
      }
    }
  };
  for (const dir of ['agent', 'bridge', 'processor', 'clickhouse', 'common', 'cli', 'console', 'simulator']) walk(dir);
  if (stale.length === 0) return 'dist/ (compiled, as production runs it)';
  process.env.VCAM_FROM_SOURCE = '1';
  return `TypeScript sources through tsx: dist/ is older than ${stale.length} source files (npm run build first to measure the compiled code)`;
}

export interface Probe {
  mode: Mode;
  rate: number;
  sustained: boolean;
  /** Why the probe does not count as sustained; empty when it does. */
  why: string[];
  rateAchieved: number;
  /** Events the cameras had sent and the bridge not yet acknowledged, at the last progress report of the run. */
  backlogAtEnd: number;
  latencyMs: Quantiles;
  latencyAfterWarmupMs: Quantiles;
  /** Null when the run fell behind: not counted by the drain deadline, with events still in flight. */
  lost: number | null;
  uncounted: number;
  doubleCounted: number;
  throughputEps: number;
  /** Whole probe: stack start, run, drain, settle, stop. */
  wallS: number;
  /** Per process, over the simulator's run (not start-up or drain). */
  processes: Record<string, ProcUsage>;
  /** CPU µs per event per stage over the run; undefined when the probe was abandoned or failed. */
  costs?: CostTable;
}

/** Kafka mode: load starts once every processor has its partitions (joining the group is start-up, not throughput). */
async function consumersAssigned(stack: Stack, timeoutMs = 30_000): Promise<void> {
  const ports = stack.children.filter((c) => c.name.startsWith('processor')).map((c) => c.child.spawnargs[c.child.spawnargs.indexOf('--http-port') + 1]);
  const until = Date.now() + timeoutMs;
  for (const port of ports) {
    while (Date.now() < until) {
      const h = (await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.json(),
        () => ({}),
      )) as { partitions?: unknown[] };
      if (h.partitions?.length) break;
      await sleep(200);
    }
  }
}

/**
 * Gives up on a probe that has clearly failed, rather than running and draining it to the end.
 * The agents' backlog alone misses a pipeline that falls behind after the bridge (in Kafka mode
 * the bridge acknowledges once Kafka has the events), so ClickHouse's newest row is watched too,
 * with one small query every 2 s.
 */
class Watchdog {
  reason?: string;
  private client?: ClickHouseClient;
  private timer?: NodeJS.Timeout;
  private runStart = 0;
  private busy = false;

  constructor(
    private readonly rate: number,
    private readonly abort: AbortController,
  ) {}

  watch(clickhouseUrl: string, passwordFile: string): void {
    this.client = createClient({ url: clickhouseUrl, password: readSecretFile(passwordFile, 'ClickHouse password') });
  }

  progress(p: Progress): void {
    if (p.backlog > this.rate * ABANDON_BACKLOG_S) this.giveUp(`abandoned after ${p.elapsedS} s: ${p.backlog} events not yet acknowledged, over ${ABANDON_BACKLOG_S} s of sends`);
  }

  start(): void {
    if (this.timer || !this.client) return;
    this.runStart = Date.now();
    this.timer = setInterval(() => void this.check(), 2_000);
  }

  private async check(): Promise<void> {
    if (this.busy || !this.client) return;
    this.busy = true;
    try {
      const [row] = await queryRows<{ newest: string }>(this.client, 'SELECT toString(toUnixTimestamp64Milli(max(received_at))) AS newest FROM vcam.events');
      const now = Date.now();
      const behindS = (now - Math.max(Number(row?.newest) || 0, this.runStart)) / 1000;
      if (now - this.runStart > ABANDON_GRACE_S * 1000 && behindS > ABANDON_STALE_S) {
        this.giveUp(`abandoned after ${Math.round((now - this.runStart) / 1000)} s: the newest event in ClickHouse was received ${behindS.toFixed(1)} s ago`);
      }
    } catch {
      // A slow or failing read says nothing about the probe.
    } finally {
      this.busy = false;
    }
  }

  private giveUp(reason: string): void {
    if (this.reason) return;
    this.reason = reason;
    this.stop();
    this.abort.abort();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async close(): Promise<void> {
    this.stop();
    await this.client?.close();
  }
}

const probes = new Map<string, Promise<Probe>>();

let simulatorCost: number | undefined;
/** Measured once per bench run, in this process, between probes (nothing else runs then). */
const simulatorUs = () => (simulatorCost ??= simulatorUsPerEvent());

/** The rate every search passes through (2,500 doubled twice): its cost table compares across runs and changes. */
export const COST_RATE = 10_000;

/** One verify run at `rate`; the same mode, rate and length in one bench run is measured once. */
export function probe(mode: Mode, rate: number, cfg: BenchConfig): Promise<Probe> {
  const key = `${mode}@${rate}@${cfg.probeMs}`;
  let p = probes.get(key);
  if (!p) probes.set(key, (p = runProbe(mode, rate, cfg)));
  return p;
}

async function runProbe(mode: Mode, rate: number, cfg: BenchConfig): Promise<Probe> {
  process.stderr.write(`bench: e2e ${mode} at ${rate}/s for ${cfg.probeMs / 1000} s…\n`);
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-e2e-'));
  const scenario: Scenario = { ...SCENARIO_DEFAULTS, rate, durationMs: cfg.probeMs, bursts: 0 };
  const abort = new AbortController();
  let sampler: Sampler | undefined;
  let last: Progress | undefined;
  const watchdog = new Watchdog(rate, abort);
  const started = Date.now();
  const why: string[] = [];
  let result: Omit<Probe, 'mode' | 'rate' | 'sustained' | 'why' | 'wallS' | 'processes' | 'backlogAtEnd' | 'costs'>;
  let sent = 0;
  try {
    const r = await verify({
      mode,
      scenario,
      dir,
      breakDedup: false,
      partitions: 4,
      alertBaselineMinutes: 2,
      drainTimeoutMs: cfg.drainMs,
      logLevel: 'warn',
      signal: abort.signal,
      onStackUp: async (stack) => {
        if (mode === 'kafka') await consumersAssigned(stack);
        watchdog.watch(stack.clickhouseUrl, stack.clickhousePasswordFile);
        // The broker's pid is read at each sample: chaos may restart it.
        sampler = new Sampler(() => new Map<string, number | undefined>([[SELF, process.pid], ...stack.children.map((c) => [c.name, c.child.pid] as const), ...(stack.kafka ? [['kafka', stack.kafka.pid] as const] : [])]));
      },
      onProgress: (phase, p) => {
        if (phase === 'running') {
          sampler?.start();
          watchdog.start();
          if (p) watchdog.progress((last = p));
        } else {
          sampler?.stop();
          watchdog.stop();
        }
      },
    });
    why.push(...r.problems);
    sent = r.sent;
    result = {
      rateAchieved: r.durationS > 0 ? Math.round(r.sent / r.durationS) : 0,
      latencyMs: r.latencyMs,
      latencyAfterWarmupMs: r.latencyAfterWarmupMs,
      lost: r.lost,
      uncounted: r.uncounted,
      doubleCounted: r.doubleCounted,
      throughputEps: r.throughputEps,
    };
  } catch (err) {
    why.push(watchdog.reason ?? `verify failed: ${(err as Error).message.split('\n')[0]}`);
    result = { rateAchieved: last?.rateAchieved ?? 0, latencyMs: NO_LATENCY, latencyAfterWarmupMs: NO_LATENCY, lost: NaN, uncounted: NaN, doubleCounted: NaN, throughputEps: NaN };
  } finally {
    sampler?.stop();
    await watchdog.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (result.rateAchieved < SENT_SHARE * rate) why.push(`the simulator sent ${result.rateAchieved}/s, under ${SENT_SHARE * 100} % of ${rate}/s`);
  if (result.latencyAfterWarmupMs.p99 > P99_LIMIT_MS) why.push(`p99 after warm-up ${result.latencyAfterWarmupMs.p99} ms > ${P99_LIMIT_MS} ms`);
  // Latency starts when an agent takes an event: events still waiting for their agent are not in it.
  const backlogAtEnd = last?.backlog ?? 0;
  if (!watchdog.reason && backlogAtEnd > (rate * P99_LIMIT_MS) / 1000) why.push(`the run ended with ${backlogAtEnd} events not yet acknowledged, over ${P99_LIMIT_MS / 1000} s of sends`);
  const processes = sampler?.usage() ?? {};
  const costs = sent > 0 ? costTable(processes, sent, SELF, simulatorUs()) : undefined;
  return { mode, rate, sustained: why.length === 0, why, ...result, backlogAtEnd, wallS: Math.round((Date.now() - started) / 1000), processes, costs };
}

interface Search {
  probes: Probe[];
  best?: Probe;
  /** Lowest rate that failed, when one did. */
  firstFailing?: number;
  stoppedBy?: string;
}

/** Doubles from the start rate until a probe fails, then bisects between the last pass and that failure. */
async function search(mode: Mode, cfg: BenchConfig, deadline: number): Promise<Search> {
  const tried: Probe[] = [];
  let lo: Probe | undefined;
  let hi: number | undefined;
  let stoppedBy: string | undefined;
  const canProbe = () => {
    if (tried.length >= cfg.maxProbesPerMode) stoppedBy = `at most ${cfg.maxProbesPerMode} probes`;
    else if (Date.now() + cfg.probeMs + PROBE_OVERHEAD_MS > deadline) stoppedBy = 'the time budget';
    else return true;
    return false;
  };
  const run = async (rate: number) => {
    const p = await probe(mode, rate, cfg);
    tried.push(p);
    if (p.sustained) lo = p;
    else hi = rate;
  };
  if (cfg.fixedRate) {
    await run(cfg.fixedRate);
    return { probes: tried, best: lo, firstFailing: hi, stoppedBy: `VCAM_BENCH_RATE=${cfg.fixedRate}` };
  }
  for (let rate = cfg.startRate; hi === undefined && canProbe(); rate *= 2) await run(rate);
  for (let i = 0; i < cfg.bisectSteps && hi !== undefined; i++) {
    const mid = Math.round(((lo?.rate ?? 0) + hi) / 2 / RATE_STEP) * RATE_STEP;
    if (mid <= (lo?.rate ?? 0) || mid >= hi || !canProbe()) break;
    await run(mid);
  }
  return { probes: tried, best: lo, firstFailing: hi, stoppedBy };
}

/** What the simulator and its agents alone reach: the same code, a broker that only acknowledges. */
async function agentsOnlyCeiling(cfg: BenchConfig): Promise<{ eventsPerSec: number; probes: { rate: number; sentPerSec: number; acknowledgedPerSec: number }[] }> {
  const mosquitto = await startMosquitto();
  const out: { rate: number; sentPerSec: number; acknowledgedPerSec: number }[] = [];
  try {
    for (let rate = 10_000; out.length < (cfg.quick ? 2 : 6); rate *= 2) {
      process.stderr.write(`bench: e2e baseline, agents only at ${rate}/s…\n`);
      const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-ceiling-'));
      const sim = new Simulation({ scenario: { ...SCENARIO_DEFAULTS, rate, durationMs: cfg.ceilingProbeMs, bursts: 0 }, mqttUrl: mosquitto.url, dataDir: dir });
      try {
        await sim.start();
        await sim.run();
        const p = sim.progress();
        out.push({ rate, sentPerSec: p.rateAchieved, acknowledgedPerSec: Math.round(p.acknowledged / p.elapsedS) });
        await sim.drain(30_000);
      } finally {
        await sim.close();
        rmSync(dir, { recursive: true, force: true });
      }
      if (out.at(-1)!.acknowledgedPerSec < SENT_SHARE * rate) break;
    }
  } finally {
    await mosquitto.stop();
  }
  return { eventsPerSec: Math.max(...out.map((p) => p.acknowledgedPerSec)), probes: out };
}

export async function benchE2e(): Promise<Record<string, unknown>> {
  const cfg = benchConfig();
  const code = componentCode();
  const started = Date.now();
  const deadline = started + cfg.budgetMs;
  const ceiling = await agentsOnlyCeiling(cfg);
  const modes: Record<string, unknown> = {};
  for (const [i, mode] of cfg.modes.entries()) {
    // Each mode gets an equal share of what is left, so the first cannot starve the second.
    const s = await search(mode, cfg, Date.now() + (deadline - Date.now()) / (cfg.modes.length - i));
    const sustained = s.best?.rate ?? 0;
    modes[mode === 'kafka' ? 'kafka' : 'singleNode'] = {
      targetEps: TARGETS[mode],
      sustainedEps: sustained,
      meetsTarget: sustained >= TARGETS[mode],
      vsAgentsOnly: ratio(sustained, ceiling.eventsPerSec),
      firstFailingEps: s.firstFailing ?? null,
      searchStoppedBy: s.stoppedBy ?? null,
      [`costsAt${COST_RATE / 1000}k`]: s.probes.find((p) => p.rate === COST_RATE)?.costs ?? null,
      atSustained: s.best ? { rateAchieved: s.best.rateAchieved, throughputEps: s.best.throughputEps, latencyMs: s.best.latencyMs, latencyAfterWarmupMs: s.best.latencyAfterWarmupMs, processes: s.best.processes, costs: s.best.costs } : null,
      probes: s.probes.map(({ mode: _, processes: __, costs: ___, ...p }) => p),
    };
  }
  return {
    what: `highest rate with verify exact (nothing lost or counted twice), ≥ ${SENT_SHARE * 100} % of it really sent, at most ${P99_LIMIT_MS / 1000} s of sends unacknowledged when the run ended, and p99 ≤ ${P99_LIMIT_MS} ms over the events received ${WARMUP_MS / 1000} s or more into the run (latencyAfterWarmupMs; latencyMs is the whole run's)`,
    latency: "agent receive (received_at) → the processor's write of the chunk (processed_at); the chunk's aggregates follow in the same write",
    scenario: `simulator defaults (4 agents, 1,000 cameras, 50 geos, 5 % retries, 1 % old re-sends, 5 % late, 5 % out of order, 1 % malformed), no bursts, ${cfg.probeMs / 1000} s per probe`,
    search: `double from ${cfg.startRate}/s until a probe fails, then ${cfg.bisectSteps} bisection steps; after ${ABANDON_GRACE_S} s a probe is abandoned once the agents' backlog exceeds ${ABANDON_BACKLOG_S} s of sends or ClickHouse's newest event was received over ${ABANDON_STALE_S} s ago`,
    processes: 'cores = CPU seconds per second over the run; RSS sampled every second from /proc; simulator+agents is this bench process; kafka is the local Apache Kafka broker (JVM)',
    costs: `CPU µs per event per stage over the run (process CPU time / events sent); the simulator's part of this process measured alone in the same run, the rest is the agents'; budget ${BUDGET_US} µs for all stages (50,000/s on 2 cores). costsAt${COST_RATE / 1000}k compares across runs`,
    components: code,
    quick: cfg.quick,
    baseline: {
      name: 'agents only: the same simulator and agents (real SQLite outboxes, QoS 1) publishing to Debian mosquitto, no pipeline; the highest acknowledged events/s, doubling from 10,000/s',
      eventsPerSec: ceiling.eventsPerSec,
      probes: ceiling.probes,
    },
    ...modes,
    benchSeconds: Math.round((Date.now() - started) / 1000),
  };
}
