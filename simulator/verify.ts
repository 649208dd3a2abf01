/**
 * `vcam verify`: a whole stack on loopback in a temporary directory, the simulator against it,
 * then ClickHouse compared with the simulator's ledger. One JSON report; `ok` is false when
 * anything was lost, counted twice, or dead-lettered in a number other than what was sent.
 */
import { createClient } from '@clickhouse/client';
import { join } from 'node:path';
import { sleep } from '../common/retry.js';
import { compare, observe, type Observed } from './compare.js';
import type { Ledger } from './ledger.js';
import { loadSimGeos } from './geos.js';
import type { Scenario } from './scenario.js';
import { Simulation, type Progress } from './sim.js';
import { Stack, type Mode } from './stack.js';

export interface VerifyOptions {
  mode: Mode;
  scenario: Scenario;
  dir: string;
  breakDedup: boolean;
  partitions: number;
  alertBaselineMinutes: number;
  drainTimeoutMs: number;
  logLevel: string;
  signal?: AbortSignal;
  onProgress?: (phase: string, p?: Progress) => void;
  /** Called once the stack is up, before the simulator starts (the bench samples the children's CPU and memory). */
  onStackUp?: (stack: Stack) => void | Promise<void>;
}

export interface VerifyReport {
  ok: boolean;
  mode: Mode;
  rate: number;
  durationS: number;
  seed: number;
  sent: number;
  unique: number;
  counted: number;
  lost: number;
  doubleCounted: number;
  dlqExpected: number;
  dlqCounted: number;
  agentRejectsExpected: number;
  agentRejected: number;
  throughputEps: number;
  latencyMs: { p50: number; p95: number; p99: number };
  burstsInjected: number;
  burstsAlerted: number;
  otherSpikeAlerts: number;
  drained: boolean;
  drainS: number;
  /** What went wrong, in words; empty when ok. */
  problems: string[];
  mismatches: string[];
  dir: string;
}

/**
 * After a burst minute ends, the spike rule judges it from lateness bound (30 s) on, for a
 * minute, every 10 s; a margin covers a lagging pipeline.
 */
const ALERT_DEADLINE_MS = 30_000 + 60_000 + 10_000 + 15_000;
/** ClickHouse unchanged this long, with everything there, means the pipeline is done. */
const QUIET_MS = 3_000;
/** Unchanged this long with events still missing: nothing more is coming. */
const STUCK_MS = 20_000;

export async function verify(o: VerifyOptions): Promise<VerifyReport> {
  const stack = new Stack({ mode: o.mode, dir: o.dir, dedup: !o.breakDedup, alertBaselineMinutes: o.alertBaselineMinutes, hotHorizonMs: o.scenario.hotHorizonMs, logLevel: o.logLevel, partitions: o.partitions });
  const sim = new Simulation({ scenario: o.scenario, mqttUrl: '', dataDir: join(o.dir, 'sim'), agentsFile: stack.agentsFile });
  const stopSim = () => sim.stop();
  o.signal?.addEventListener('abort', stopSim);
  const kill = () => stack.killAll();
  process.once('exit', kill);
  try {
    o.onProgress?.('starting the stack');
    await sim.register();
    await stack.up();
    await o.onStackUp?.(stack);
    sim.o.mqttUrl = stack.mqttUrl;
    const client = createClient({ url: stack.clickhouseUrl, request_timeout: 120_000 });
    try {
      await loadSimGeos(client, sim.geos);
      await sim.start();
      sim.on('progress', (p) => o.onProgress?.('running', p));
      o.onProgress?.('running');
      await sim.run();
      if (o.signal?.aborted) throw new Error('interrupted');
      o.onProgress?.('draining');
      const drainStart = Date.now();
      const drained = await sim.drain(o.drainTimeoutMs, o.signal);
      let final = await settle(client, sim.ledger.unique, sim.ledger.malformed.deadLetters, Math.max(5_000, o.drainTimeoutMs - (Date.now() - drainStart)), o.signal);
      const lastBurst = sim.bursts.at(-1);
      if (lastBurst) {
        o.onProgress?.('waiting for burst alerts');
        final = await awaitBurstAlerts(client, sim.ledger, final, lastBurst.toMs + ALERT_DEADLINE_MS, o.signal);
      }
      if (o.signal?.aborted) throw new Error('interrupted');
      const drainS = Math.round((Date.now() - drainStart) / 100) / 10;
      return report(o, sim, final, drained, drainS, stack);
    } finally {
      await client.close();
    }
  } finally {
    o.signal?.removeEventListener('abort', stopSim);
    o.onProgress?.('stopping');
    await sim.close();
    await stack.stop();
    process.off('exit', kill);
  }
}

/**
 * Polls ClickHouse until every table verify reads has stopped changing: with everything there
 * for QUIET_MS (in Kafka mode the agents' PUBACK says nothing about ClickHouse, and a chunk's
 * aggregates land after its raw rows; re-sends may still be on their way), or with events
 * missing for STUCK_MS.
 */
async function settle(client: ReturnType<typeof createClient>, unique: number, dead: number, timeoutMs: number, signal?: AbortSignal): Promise<Observed> {
  const until = Date.now() + timeoutMs;
  let last = '';
  let stableSince = Date.now();
  for (;;) {
    const seen = await observe(client);
    const now = `${seen.rawRows}/${seen.totals.geo}/${seen.totals.deviceEvents}/${seen.totals.deviceDuplicates}/${seen.dlq}`;
    if (now !== last) [last, stableSince] = [now, Date.now()];
    const quiet = Date.now() - stableSince;
    const complete = seen.rawDistinct >= unique && seen.dlq >= dead;
    if ((complete && quiet >= QUIET_MS) || quiet >= STUCK_MS || Date.now() > until || signal?.aborted) return seen;
    await sleep(500, signal);
  }
}

/** Polls the alerts until every burst has its spike alert, or the last one is past judging. */
async function awaitBurstAlerts(client: ReturnType<typeof createClient>, ledger: Ledger, seen: Observed, deadline: number, signal?: AbortSignal): Promise<Observed> {
  while (compare(ledger, seen).burstsAlerted < ledger.bursts.length && Date.now() < deadline && !signal?.aborted) {
    await sleep(2_000, signal);
    seen = await observe(client);
  }
  return seen;
}

function report(o: VerifyOptions, sim: Simulation, seen: Observed, drained: boolean, drainS: number, stack: Stack): VerifyReport {
  const l = sim.ledger;
  const c = compare(l, seen);
  const agentRejected = sim.progress().rejectedByAgents;
  const problems: string[] = [];
  if (!drained) problems.push(`the agents still held ${sim.progress().backlog} unacknowledged events after ${o.drainTimeoutMs / 1000} s`);
  if (c.lost) problems.push(`${c.lost} events were lost`);
  if (c.doubleCounted) problems.push(`${c.doubleCounted} events were counted more than once`);
  if (seen.dlq !== l.malformed.deadLetters) problems.push(`the DLQ holds ${seen.dlq} records; ${l.malformed.deadLetters} malformed publishes were sent`);
  if (agentRejected !== l.malformed.rejectedByAgent) problems.push(`the agents rejected ${agentRejected} events; ${l.malformed.rejectedByAgent} malformed ones were sent`);
  for (const ch of stack.children) if (!ch.running) problems.push(`${ch.name} exited during the run; see ${ch.logFile}`);
  const durationS = Math.round((l.endedAt - l.startedAt) / 100) / 10;
  return {
    ok: problems.length === 0,
    mode: o.mode,
    rate: o.scenario.rate,
    durationS,
    seed: o.scenario.seed,
    sent: l.sent.total,
    unique: c.unique,
    counted: c.counted,
    lost: c.lost,
    doubleCounted: c.doubleCounted,
    dlqExpected: l.malformed.deadLetters,
    dlqCounted: seen.dlq,
    agentRejectsExpected: l.malformed.rejectedByAgent,
    agentRejected,
    throughputEps: seen.spanMs > 0 ? Math.round((seen.rawDistinct * 1000) / seen.spanMs) : 0,
    latencyMs: seen.latencyMs,
    burstsInjected: c.burstsInjected,
    burstsAlerted: c.burstsAlerted,
    otherSpikeAlerts: c.otherSpikeAlerts,
    drained,
    drainS,
    problems,
    mismatches: c.mismatches,
    dir: o.dir,
  };
}
