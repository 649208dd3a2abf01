/**
 * `vcam verify --chaos`: the faults production brings, injected at times drawn from a seed into
 * a Kafka-mode stack (two bridges, two processors, `vcam agent` processes) while the simulator
 * runs. kill -9 of agents, bridges and processors, ClickHouse stopped, the Kafka broker down, one
 * agent cut off from its bridge and later rebuilt from an old copy of its outbox. Afterwards
 * verify's ledger comparison must still be exact, and every fault must have opened an alert in
 * Prometheus that later resolved.
 */
import { appendFileSync, existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../common/errors.js';
import { parseMetrics } from '../common/metrics.js';
import { sleep } from '../common/retry.js';
import type { ProcessAgent } from './agents.js';
import type { Firing } from './prometheus.js';
import type { CuttableProxy } from './proxy.js';
import { seededRng } from './random.js';
import type { Simulation } from './sim.js';
import type { Child, Stack } from './stack.js';
import { queryRows } from '../clickhouse/query.js';

export interface ChaosOptions {
  kills: number;
  clickhouseOutageMs: number;
  kafkaOutageMs: number;
  /** How long the cut-off agent has no connection to its bridge. */
  cutMs: number;
  /** A killed component stays down between these before it is restarted. */
  pauseMinMs: number;
  pauseMaxMs: number;
}

export type FaultKind = 'kill' | 'clickhouse-stop' | 'kafka-down' | 'agent-cut' | 'outbox-restore';

export interface Fault {
  kind: FaultKind;
  /** The component's name in the stack (agent-sim-1, bridge-2, processor-1, clickhouse, kafka). */
  target: string;
  atMs: number;
  durationMs: number;
}

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  /** Seconds from the start of the run. */
  atS: number;
  downS: number;
  /** From the end of the fault (restart, reconnect) until the component or pipeline works again. */
  recoveryS: number | null;
  /** The alert (all its firing instances) that told an operator; null when none fired. */
  alert: { name: string; instances: number; openedAtS: number; resolvedAtS: number | null } | null;
  note?: string;
}

export interface ChaosReport {
  seed: number;
  faultsInjected: Record<FaultKind, number>;
  faults: FaultRecord[];
  maxLagEvents: number;
  maxAgentBacklog: number;
  /** Events re-sent after the cut-off agent's outbox was restored from the old copy. */
  resentFromOldOutbox: number;
  /** Components that exited without being killed, and were restarted as a supervisor would. */
  unplannedRestarts: string[];
  faultsFailed: number;
  /** The alerts were judged by vcam's rules with every `for:` set to 0 s: faults here last seconds, production waits minutes. */
  alertRules: string;
}

const OUTBOX = 'outbox.sqlite';

/** Copies a stopped agent's outbox (the database and its WAL) from one directory to another, replacing what is there. */
async function copyOutbox(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const suffix of ['', '-wal', '-shm']) {
    await rm(join(to, OUTBOX + suffix), { force: true });
    if (suffix !== '-shm' && existsSync(join(from, OUTBOX + suffix))) await copyFile(join(from, OUTBOX + suffix), join(to, OUTBOX + suffix));
  }
}

/** Events in an outbox image (read from a scratch copy: opening it would add files beside it). */
function countOutbox(dir: string): number {
  const db = new Database(join(dir, OUTBOX), { fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const REBUILD_PAUSE_MS = 5_000;

/** Which alert tells an operator about each fault. */
const ALERT_FOR: Record<FaultKind, (f: Fault) => (a: Firing) => boolean> = {
  kill: (f) => (a) => a.alertname === 'VcamComponentDown' && a.labels.component === f.target,
  'outbox-restore': (f) => (a) => a.alertname === 'VcamComponentDown' && a.labels.component === f.target,
  'clickhouse-stop': () => (a) => a.alertname === 'VcamClickHouseWriteErrors',
  'kafka-down': () => (a) => a.alertname === 'VcamBridgeForwardFailing',
  'agent-cut': (f) => (a) => a.alertname === 'VcamAgentDisconnected' && `agent-${a.labels.agent}` === f.target,
};

/** An alert must open within this of its fault's end (scrape, evaluation, a retry's backoff). */
const ALERT_GRACE_MS = 45_000;

/**
 * The fault schedule, a pure function of the seed: the same seed replays the same schedule.
 * The cut and the restore of the last agent come first, so that its re-sends arrive more than
 * the hot horizon after the events; ClickHouse is stopped in the first half and Kafka in the
 * second, apart, so each outage's recovery is its own; kills fall anywhere, never on a
 * component that is still down from the previous kill.
 */
export function planFaults(seed: number, durationMs: number, hotHorizonMs: number, targets: { agents: string[]; bridges: string[]; processors: string[] }, o: ChaosOptions): Fault[] {
  const rand = seededRng(seed ^ 0x5eed);
  const between = (a: number, b: number) => Math.round(a + rand() * Math.max(0, b - a));
  const D = durationMs;
  const cutAgent = targets.agents.at(-1)!;
  const cut: Fault = { kind: 'agent-cut', target: cutAgent, atMs: Math.round(0.1 * D), durationMs: o.cutMs };
  const restoreAt = cut.atMs + cut.durationMs + hotHorizonMs + 5_000;
  if (restoreAt > 0.9 * D) {
    throw new ConfigError(`--duration ${D / 1000}s is too short for chaos: the cut (${o.cutMs / 1000}s) and the hot horizon (${hotHorizonMs / 1000}s) must end before 90% of the run; shorten --chaos-cut or --hot-horizon, or run longer`);
  }
  const faults: Fault[] = [cut, { kind: 'outbox-restore', target: cutAgent, atMs: restoreAt, durationMs: 0 }];
  faults.push({ kind: 'clickhouse-stop', target: 'clickhouse', atMs: between(0.15 * D, 0.5 * D - o.clickhouseOutageMs), durationMs: o.clickhouseOutageMs });
  faults.push({ kind: 'kafka-down', target: 'kafka', atMs: between(0.55 * D, 0.9 * D - o.kafkaOutageMs), durationMs: o.kafkaOutageMs });
  const killable = [...targets.agents.filter((a) => a !== cutAgent), ...targets.bridges, ...targets.processors];
  const kills = Array.from({ length: o.kills }, () => ({ kind: 'kill' as const, target: killable[Math.floor(rand() * killable.length)]!, atMs: between(0.05 * D, 0.85 * D), durationMs: between(o.pauseMinMs, o.pauseMaxMs) }));
  const busyUntil = new Map<string, number>();
  for (const k of kills.sort((a, b) => a.atMs - b.atMs)) {
    // Room for the previous kill's restart and recovery.
    k.atMs = Math.max(k.atMs, (busyUntil.get(k.target) ?? 0) + 15_000);
    busyUntil.set(k.target, k.atMs + k.durationMs);
    faults.push(k);
  }
  return faults.sort((a, b) => a.atMs - b.atMs);
}

export interface ChaosContext {
  stack: Stack;
  sim: Simulation;
  agents: ProcessAgent[];
  proxy: CuttableProxy;
  clickhouse: ClickHouseClient;
  dir: string;
  signal?: AbortSignal;
}

/** Runs a fault plan against a running stack; supervises, samples lag and backlog, measures recovery. */
export class ChaosRun {
  readonly records: FaultRecord[] = [];
  readonly unplanned: string[] = [];
  maxLag = 0;
  maxBacklog = 0;
  resent = 0;
  private readonly held = new Set<string>();
  private t0 = 0;
  private timer?: NodeJS.Timeout;
  private outboxCopy = '';
  private readonly faultOf = new Map<FaultRecord, Fault>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Ends pending faults when the run ends early or the caller aborts, so none restarts a component after teardown. */
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly c: ChaosContext,
    readonly plan: Fault[],
  ) {
    this.signal = c.signal ? AbortSignal.any([c.signal, this.abort.signal]) : this.abort.signal;
  }

  private children(): Child[] {
    return [...this.c.stack.children, ...this.c.agents.map((a) => a.proc)];
  }

  private child(name: string): Child {
    const ch = this.children().find((x) => x.name === name);
    if (!ch) throw new Error(`chaos: no component ${name}`);
    return ch;
  }

  private agentOf(name: string): { agent: ProcessAgent; index: number } {
    const index = this.c.agents.findIndex((a) => a.proc.name === name);
    return { agent: this.c.agents[index]!, index };
  }

  /** Injects every fault at its time; resolves when the last has recovered. */
  async run(t0: number): Promise<void> {
    this.t0 = t0;
    this.timer = setInterval(() => void this.tick(), 1_000);
    await Promise.all(
      this.plan.map(async (f) => {
        await sleep(Math.max(0, t0 + f.atMs - Date.now()), this.signal);
        if (this.signal.aborted) return;
        // One fault at a time per component: a kill waits for the previous one's recovery.
        const prior = this.locks.get(f.target) ?? Promise.resolve();
        const done = prior.then(async () => {
          const at = Date.now();
          this.log(f, 'begin');
          const r = await this.inject(f, at).catch((err: Error) => this.record(f, at, at, null, `failed: ${err.message}`));
          this.log(f, r.note ?? `recovered after ${r.recoveryS} s`);
          return r;
        });
        this.locks.set(f.target, done);
        const r = await done;
        this.faultOf.set(r, f);
        this.records.push(r);
      }),
    );
  }

  stop(): void {
    clearInterval(this.timer);
    this.abort.abort();
  }

  /** Restarts what died on its own (as systemd would) and samples the largest lag and backlog. */
  private async tick(): Promise<void> {
    for (const ch of this.children()) {
      if (ch.running || this.held.has(ch.name) || this.signal.aborted) continue;
      this.unplanned.push(`${ch.name} at ${Math.round((Date.now() - this.t0) / 1000)}s`);
      try {
        ch.restart();
      } catch {
        // Stopped for good: the run is ending.
      }
    }
    this.maxBacklog = Math.max(this.maxBacklog, ...this.c.agents.map((a) => a.backlog));
    const lags = await Promise.all(
      this.c.stack.children
        .filter((ch) => ch.name.startsWith('processor') && ch.metricsUrl)
        .map((ch) =>
          fetch(ch.metricsUrl!, { signal: AbortSignal.timeout(900) })
            .then(async (r) => parseMetrics(await r.text()).sums.get('vcam_processor_consumer_lag_events') ?? 0)
            .catch(() => 0),
        ),
    );
    this.maxLag = Math.max(
      this.maxLag,
      lags.reduce((a, b) => a + b, 0),
    );
  }

  /** `at`: the fault began; `back`: the component came back (restart, reconnect, broker up). */
  private record(f: Fault, at: number, back: number, recoveredAfterMs: number | null, note?: string): FaultRecord {
    const s = (ms: number) => Math.round(ms / 100) / 10;
    return { kind: f.kind, target: f.target, atS: s(at - this.t0), downS: s(back - at), recoveryS: recoveredAfterMs === null ? null : s(recoveredAfterMs), alert: null, ...(note ? { note } : {}) };
  }

  /** `<dir>/logs/chaos.log`: what was done when, to read beside the components' logs. */
  private log(f: Fault, what: string): void {
    appendFileSync(join(this.c.stack.logDir, 'chaos.log'), `${JSON.stringify({ time: new Date().toISOString(), atS: Math.round((Date.now() - this.t0) / 100) / 10, kind: f.kind, target: f.target, what })}\n`);
  }

  private async inject(f: Fault, at: number): Promise<FaultRecord> {
    switch (f.kind) {
      case 'kill': {
        const ch = this.child(f.target);
        this.held.add(ch.name);
        try {
          await ch.kill9();
          await sleep(f.durationMs, this.signal);
          ch.restart();
          const restarted = Date.now();
          await ch.healthy(180_000, this.signal);
          return this.record(f, at, restarted, Date.now() - restarted);
        } finally {
          this.held.delete(ch.name);
        }
      }
      case 'clickhouse-stop': {
        const ch = this.child('clickhouse');
        this.held.add(ch.name);
        try {
          await ch.stop(30_000, false);
          this.log(f, 'stopped');
          await sleep(f.durationMs, this.signal);
          this.log(f, 'restarting');
          ch.restart();
          const restarted = Date.now();
          await ch.healthy(180_000, this.signal);
          return this.record(f, at, restarted, (await this.writtenAfter(restarted)) - restarted);
        } finally {
          this.held.delete(ch.name);
        }
      }
      case 'kafka-down': {
        const kafka = this.c.stack.kafka!;
        await kafka.kill();
        await sleep(f.durationMs, this.signal);
        await kafka.start();
        const up = Date.now();
        return this.record(f, at, up, (await this.writtenAfter(up)) - up);
      }
      case 'agent-cut': {
        const { agent } = this.agentOf(f.target);
        this.c.proxy.cut();
        try {
          await sleep(f.durationMs, this.signal);
          // The old copy the gateway will later be rebuilt from: the whole backlog of the cut,
          // imaged while the agent is down (it holds its outbox locked while it runs; after a
          // kill -9 the file and its WAL together are a consistent image).
          const { index } = this.agentOf(f.target);
          this.sim.hold(index, true);
          this.held.add(agent.proc.name);
          try {
            await this.sim.quiet(index, this.signal, 60_000, false);
            await agent.proc.kill9();
            const copy = join(this.c.dir, 'outbox-copy');
            await copyOutbox(agent.spec.dataDir, copy);
            this.outboxCopy = copy;
            agent.proc.restart();
            await agent.proc.healthy(60_000, this.signal);
          } finally {
            this.held.delete(agent.proc.name);
            this.sim.hold(index, false);
          }
        } finally {
          this.c.proxy.restore();
        }
        const reconnected = Date.now();
        await this.backlogBelow(agent, 1_000);
        return this.record(f, at, reconnected, Date.now() - reconnected);
      }
      case 'outbox-restore': {
        // The gateway is rebuilt from the old copy: its cameras wait (their events are held),
        // it sends what it has, dies, and comes back with the copy, re-sending events that were
        // acknowledged long ago, beyond the processor's hot horizon.
        if (!this.outboxCopy) throw new Error('no image of the outbox was taken (the cut failed); the live outbox was left alone');
        const { agent, index } = this.agentOf(f.target);
        this.resent = countOutbox(this.outboxCopy);
        this.sim.hold(index, true);
        this.held.add(agent.proc.name);
        try {
          await this.sim.quiet(index, this.signal);
          await agent.proc.kill9();
          await copyOutbox(this.outboxCopy, agent.spec.dataDir);
          // Down for two scrapes at least, so that Prometheus sees it.
          await sleep(REBUILD_PAUSE_MS, this.signal);
          agent.proc.restart();
          const restarted = Date.now();
          await agent.proc.healthy(60_000, this.signal);
          this.sim.hold(index, false);
          await this.backlogBelow(agent, 1_000);
          return this.record(f, at, restarted, Date.now() - restarted);
        } finally {
          this.held.delete(agent.proc.name);
          this.sim.hold(index, false);
        }
      }
    }
  }

  private get sim(): Simulation {
    return this.c.sim;
  }

  /** When the pipeline first wrote an event after `t` (ClickHouse's processed_at). */
  private async writtenAfter(t: number, timeoutMs = 300_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && !this.signal.aborted) {
      const [r] = await queryRows<{ at: string }>(this.c.clickhouse, 'SELECT toString(toUnixTimestamp64Milli(max(processed_at))) AS at FROM vcam.events').catch(() => [{ at: '0' }]);
      if (Number(r?.at) > t) return Number(r!.at);
      await sleep(500, this.signal);
    }
    throw new Error(`the pipeline wrote nothing within ${timeoutMs / 1000} s`);
  }

  private async backlogBelow(agent: ProcessAgent, n: number, timeoutMs = 600_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    // A fresh figure first: the one cached may predate the fault.
    await agent.refresh();
    while (agent.backlog >= n && !this.signal.aborted) {
      if (Date.now() > until) throw new Error(`agent ${agent.id} still held ${agent.backlog} events after ${timeoutMs / 1000} s`);
      await sleep(250, this.signal);
      await agent.refresh();
    }
  }

  /**
   * Matches each fault with the alert that should have told an operator, from Prometheus'
   * record: every stretch of it (one per instance) that opened between the fault's start and
   * ALERT_GRACE_MS after the component came back, or was already open when it struck. Resolved
   * only when all of them are.
   */
  attachAlerts(firings: Firing[]): void {
    const s = (ms: number) => Math.round((ms - this.t0) / 100) / 10;
    for (const r of this.records) {
      const f = this.faultOf.get(r)!;
      const start = this.t0 + r.atS * 1000;
      const end = start + r.downS * 1000 + ALERT_GRACE_MS;
      const matches = firings.filter(ALERT_FOR[r.kind](f)).filter((a) => a.fromMs <= end && (a.toMs === undefined || a.toMs >= start));
      if (!matches.length) continue;
      const open = matches.some((a) => a.toMs === undefined);
      r.alert = { name: matches[0]!.alertname, instances: matches.length, openedAtS: s(Math.min(...matches.map((a) => a.fromMs))), resolvedAtS: open ? null : s(Math.max(...matches.map((a) => a.toMs!))) };
    }
  }

  /** Every fault has its alert, opened and resolved. */
  get alertsComplete(): boolean {
    return this.records.length === this.plan.length && this.records.every((r) => r.alert?.resolvedAtS != null);
  }

  report(seed: number): ChaosReport {
    const faultsInjected = { kill: 0, 'clickhouse-stop': 0, 'kafka-down': 0, 'agent-cut': 0, 'outbox-restore': 0 } as Record<FaultKind, number>;
    for (const r of this.records) faultsInjected[r.kind]++;
    return {
      seed,
      faultsInjected,
      faultsFailed: this.records.filter((r) => r.note).length,
      faults: [...this.records].sort((a, b) => a.atS - b.atS),
      maxLagEvents: this.maxLag,
      maxAgentBacklog: this.maxBacklog,
      resentFromOldOutbox: this.resent,
      unplannedRestarts: this.unplanned,
      alertRules: "deploy/prometheus/rules.yml with every 'for:' set to 0s",
    };
  }
}
