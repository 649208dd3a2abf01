/**
 * `vcam verify`: a whole stack on loopback in a temporary directory, the simulator against it,
 * then ClickHouse compared with the simulator's ledger. One JSON report; `ok` is false when
 * anything was lost, counted twice, or dead-lettered in a number other than what was sent.
 */
import { createClient } from '@clickhouse/client';
import { join } from 'node:path';
import { sleep } from '../common/retry.js';
import { readSecretFile } from '../common/secrets.js';
import { ProcessAgent } from './agents.js';
import { ChaosRun, planFaults, type ChaosOptions, type ChaosReport } from './chaos.js';
import { compare, observe, spikeAlerts, totals, type Observed, type Quantiles } from './compare.js';
import type { Ledger } from './ledger.js';
import { loadSimGeos } from './geos.js';
import type { Scenario } from './scenario.js';
import { Simulation, type Progress } from './sim.js';
import { Prometheus } from './prometheus.js';
import { CuttableProxy } from './proxy.js';
import { compareArchive, observeArchive, type ArchiveReport } from './archive.js';
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
  /** Kafka mode with faults (vcam verify --chaos). */
  chaos?: ChaosOptions;
  /** Archive to a Delta table on a local S3 every `everyMs`, and check it against the ground truth. */
  archive?: { everyMs: number };
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
  /** Distinct events not counted when verify stopped waiting. */
  uncounted: number;
  /**
   * Uncounted events with nothing left in flight to count them: a loss. Null when the pipeline
   * still held events at the deadline (it fell behind), which cannot tell a loss from a delay.
   */
  lost: number | null;
  /** What the pipeline still held when verify stopped waiting; null where it could not be read. */
  inFlight: InFlight;
  doubleCounted: number;
  dlqExpected: number;
  dlqCounted: number;
  agentRejectsExpected: number;
  agentRejected: number;
  throughputEps: number;
  latencyMs: Quantiles;
  /** Of events received 5 s or more after the first (compare.ts, WARMUP_MS). */
  latencyAfterWarmupMs: Quantiles;
  burstsInjected: number;
  burstsAlerted: number;
  otherSpikeAlerts: number;
  drained: boolean;
  drainS: number;
  /** Kafka mode: the Apache Kafka broker the run talked to. */
  kafka?: { version: string; partitions: number };
  /** With --archive: the Delta table against the ground truth. */
  archive?: ArchiveReport;
  /** What went wrong, in words; empty when ok. */
  problems: string[];
  mismatches: string[];
  dir: string;
  chaos?: ChaosReport;
}

export interface InFlight {
  /** Events the agents had not had acknowledged. */
  agentEvents: number;
  /** Kafka records (each one or more events) not yet committed by the processors; 0 in single-node mode. */
  kafkaRecords: number | null;
}

/**
 * Uncounted events are lost only when nothing that could still count them was in flight.
 * Otherwise the run fell behind, and the report says so rather than call them lost.
 */
export function accountFor(uncounted: number, inFlight: InFlight, drainTimeoutMs: number): { lost: number | null; problem?: string } {
  if (uncounted === 0) return { lost: 0 };
  const behind = inFlight.agentEvents > 0 || inFlight.kafkaRecords !== 0;
  if (!behind) return { lost: uncounted, problem: `${uncounted} events were lost` };
  const kafka = inFlight.kafkaRecords === null ? "Kafka's backlog could not be read" : `${inFlight.kafkaRecords} Kafka records were not yet processed`;
  return {
    lost: null,
    problem:
      `${uncounted} events were not counted within the ${drainTimeoutMs / 1000} s drain timeout while the pipeline still held events ` +
      `(${inFlight.agentEvents} in the agents; ${kafka}): it fell behind, and this run cannot tell how many, if any, were lost`,
  };
}

/**
 * After a burst minute ends, the spike rule judges it from lateness bound (30 s) on, for a
 * minute, every 10 s; a margin covers a lagging pipeline.
 */
const ALERT_DEADLINE_MS = 30_000 + 60_000 + 10_000 + 15_000;
/** ClickHouse unchanged this long, with everything there, means the pipeline is done. */
const QUIET_MS = 3_000;
/**
 * Unchanged this long with events still missing and none waiting in Kafka: nothing more is
 * coming. While Kafka holds events the processors have not committed, a member restarting after
 * a crash (its backoff reaches 30 s) is not a stuck pipeline: only the drain timeout ends that.
 */
const STUCK_MS = 20_000;

export async function verify(o: VerifyOptions): Promise<VerifyReport> {
  const chaos = o.chaos;
  // Chaos kills bridges and processors: two of each, so the pipeline never has none.
  const stack = new Stack({
    mode: o.mode,
    dir: o.dir,
    dedup: !o.breakDedup,
    alertBaselineMinutes: o.alertBaselineMinutes,
    hotHorizonMs: o.scenario.hotHorizonMs,
    logLevel: o.logLevel,
    partitions: o.partitions,
    ...(chaos ? { bridges: 2, processors: 2 } : {}),
  });
  const proxy = new CuttableProxy();
  const agents: ProcessAgent[] = [];
  const sim = new Simulation({
    scenario: o.scenario,
    mqttUrl: '',
    dataDir: join(o.dir, 'sim'),
    agentsFile: stack.agentsFile,
    // Under chaos the agents are `vcam agent` processes (kill -9 needs a process); the last one
    // reaches its bridge through a relay that can be cut.
    ...(chaos && {
      startAgent: async (spec, i) => {
        const last = i === o.scenario.agents - 1;
        const mqttUrl = last ? await proxy.listen(stack.mqttUrls[i % stack.mqttUrls.length]!) : stack.mqttUrls[i % stack.mqttUrls.length]!;
        const agent = await ProcessAgent.start({ ...spec, mqttUrl }, stack.logDir, o.logLevel);
        // By index, whatever order they start in: the plan (and the relay) depend on it.
        agents[i] = agent;
        return agent;
      },
    }),
  });
  const prometheus = new Prometheus(o.dir);
  const stopSim = () => sim.stop();
  o.signal?.addEventListener('abort', stopSim);
  const kill = () => {
    stack.killAll();
    for (const a of agents) if (a?.proc.running) a.proc.child.kill('SIGKILL');
    prometheus.kill();
  };
  process.once('exit', kill);
  let run: ChaosRun | undefined;
  let chaosDone: Promise<void> = Promise.resolve();
  try {
    o.onProgress?.('starting the stack');
    await sim.register();
    await stack.up();
    if (o.archive) await stack.startArchive(o.archive.everyMs);
    await o.onStackUp?.(stack);
    sim.o.mqttUrl = stack.mqttUrl;
    const client = createClient({ url: stack.clickhouseUrl, password: readSecretFile(stack.clickhousePasswordFile, 'ClickHouse password'), request_timeout: 120_000 });
    try {
      await loadSimGeos(client, sim.geos);
      await sim.start();
      if (chaos) {
        const address = (url: string) => url.replace(/^http:\/\//, '').replace(/\/metrics$/, '');
        await prometheus.start([
          ...agents.map((a) => ({ job: 'vcam-agent' as const, address: address(a.proc.metricsUrl!), component: a.proc.name })),
          ...stack.children
            .filter((c) => c.metricsUrl)
            .map((c) => ({ job: c.name.startsWith('bridge') ? ('vcam-bridge' as const) : c.name === 'archive' ? ('vcam-archive' as const) : ('vcam-processor' as const), address: address(c.metricsUrl!), component: c.name })),
        ]);
        const names = (prefix: string) => stack.children.filter((c) => c.name.startsWith(prefix)).map((c) => c.name);
        const plan = planFaults(o.scenario.seed, o.scenario.durationMs, o.scenario.hotHorizonMs, { agents: agents.map((a) => a.proc.name), bridges: names('bridge'), processors: names('processor') }, chaos);
        run = new ChaosRun({ stack, sim, agents, proxy, clickhouse: client, dir: o.dir, signal: o.signal }, plan);
        chaosDone = run.run(Date.now());
      }
      sim.on('progress', (p) => o.onProgress?.('running', p));
      o.onProgress?.('running');
      await sim.run();
      if (chaos) {
        o.onProgress?.('waiting for the faults to recover');
        await chaosDone;
      }
      if (o.signal?.aborted) throw new Error('interrupted');
      o.onProgress?.('draining');
      const drainStart = Date.now();
      const drained = await sim.drain(o.drainTimeoutMs, o.signal);
      let final = await settle(client, () => stack.kafkaBacklog(), sim.ledger.unique, sim.ledger.malformed.deadLetters, Math.max(5_000, o.drainTimeoutMs - (Date.now() - drainStart)), o.signal);
      const lastBurst = sim.bursts.at(-1);
      if (lastBurst) {
        o.onProgress?.('waiting for burst alerts');
        final = await awaitBurstAlerts(client, sim.ledger, final, lastBurst.toMs + ALERT_DEADLINE_MS, o.signal);
      }
      const drainS = Math.round((Date.now() - drainStart) / 100) / 10;
      let archive: ArchiveReport | undefined;
      if (o.archive) {
        o.onProgress?.('waiting for the archive');
        archive = await archiveCaughtUp(stack, sim.ledger, final.rawRows, o.drainTimeoutMs, o.signal);
      }
      if (run) {
        o.onProgress?.('waiting for the alerts to resolve');
        run.stop();
        await awaitFaultAlerts(run, prometheus, sim.ledger.startedAt, o.signal);
      }
      if (o.signal?.aborted) throw new Error('interrupted');
      // Read before the last look at ClickHouse: a processor commits a record only after its rows
      // are written, so with nothing in flight here every event it will ever count is there.
      const inFlight = { agentEvents: sim.progress().backlog, kafkaRecords: (await stack.kafkaBacklog()) ?? null };
      final = await observe(client);
      return report(o, sim, final, drained, drainS, stack, inFlight, run, archive);
    } finally {
      await client.close();
    }
  } finally {
    // Pending faults end before the teardown, so none restarts a component after it.
    run?.stop();
    await chaosDone.catch(() => undefined);
    o.signal?.removeEventListener('abort', stopSim);
    o.onProgress?.('stopping');
    await sim.close();
    // Agents started but not handed to the simulation (one of them failed to start).
    await Promise.all(agents.filter((a) => a && !sim.agents.includes(a)).map((a) => a.close()));
    await proxy.close();
    await stack.stop();
    await prometheus.stop();
    process.off('exit', kill);
  }
}

/**
 * Waits until the archiver has written as many rows as ClickHouse holds and has nothing left
 * (or `timeoutMs` passes), then reads the table and compares it with the ground truth.
 */
async function archiveCaughtUp(stack: Stack, ledger: Ledger, rawRows: number, timeoutMs: number, signal?: AbortSignal): Promise<ArchiveReport> {
  const start = Date.now();
  const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  for (;;) {
    const text = await fetch(stack.archiveMetricsUrl!).then(
      (r) => r.text(),
      () => '',
    );
    if ((metric(text, 'vcam_archive_rows_total') >= rawRows && metric(text, 'vcam_archive_lag_seconds') === 0) || Date.now() - start > timeoutMs || signal?.aborted) break;
    await sleep(500, signal);
  }
  const lagS = Math.round((Date.now() - start) / 100) / 10;
  const s3 = stack.s3!;
  return compareArchive(ledger, await observeArchive(`${s3.endpoint}/lake/events/`, s3.identity, s3.credential), lagS);
}

/** Polls Prometheus until every fault's alert has opened and resolved, or 3 minutes pass. */
async function awaitFaultAlerts(run: ChaosRun, prometheus: Prometheus, fromMs: number, signal?: AbortSignal): Promise<void> {
  const until = Date.now() + 180_000;
  for (;;) {
    run.attachAlerts(await prometheus.firings(fromMs - 60_000));
    if (run.alertsComplete || Date.now() > until || signal?.aborted) return;
    await sleep(5_000, signal);
  }
}

/**
 * Polls ClickHouse until every table verify reads has stopped changing: with everything there
 * for QUIET_MS (in Kafka mode the agents' PUBACK says nothing about ClickHouse, and a chunk's
 * aggregates land after its raw rows; re-sends may still be on their way), or with events
 * missing for STUCK_MS and nothing left in Kafka for the processors. It polls the cheap totals
 * and reads everything (`observe`) only when they say the run may be complete, and at the end.
 */
async function settle(client: ReturnType<typeof createClient>, backlog: () => Promise<number | undefined>, unique: number, dead: number, timeoutMs: number, signal?: AbortSignal): Promise<Observed> {
  const until = Date.now() + timeoutMs;
  let last = '';
  let stableSince = Date.now();
  for (;;) {
    const t = await totals(client);
    const now = `${t.rawRows}/${t.geo}/${t.deviceEvents}/${t.deviceDuplicates}/${t.dlqRows}`;
    if (now !== last) [last, stableSince] = [now, Date.now()];
    const quiet = Date.now() - stableSince;
    // The aggregates too: a chunk's aggregates land after its raw rows. Row counts include any
    // copies, so `observe` confirms with distinct ids.
    const mayBeComplete = t.rawRows >= unique && t.geo >= unique && t.deviceEvents >= unique && t.dlqRows >= dead;
    if (mayBeComplete && quiet >= QUIET_MS) {
      const seen = await observe(client);
      if (seen.rawDistinct >= unique && seen.dlq >= dead) return seen;
    }
    if (Date.now() > until || signal?.aborted) return observe(client);
    if (quiet >= STUCK_MS && (await backlog()) === 0) return observe(client);
    await sleep(500, signal);
  }
}

/** Polls the alerts until every burst has its spike alert, or the last one is past judging. */
async function awaitBurstAlerts(client: ReturnType<typeof createClient>, ledger: Ledger, seen: Observed, deadline: number, signal?: AbortSignal): Promise<Observed> {
  while (compare(ledger, seen).burstsAlerted < ledger.bursts.length && Date.now() < deadline && !signal?.aborted) {
    await sleep(2_000, signal);
    seen = { ...seen, spikeAlerts: await spikeAlerts(client) };
  }
  return seen;
}

function report(o: VerifyOptions, sim: Simulation, seen: Observed, drained: boolean, drainS: number, stack: Stack, inFlight: InFlight, run?: ChaosRun, archive?: ArchiveReport): VerifyReport {
  const l = sim.ledger;
  const c = compare(l, seen);
  const { lost, problem } = accountFor(c.lost, inFlight, o.drainTimeoutMs);
  const agentRejected = sim.progress().rejectedByAgents;
  const problems: string[] = [];
  if (!drained) problems.push(`the agents still held ${sim.progress().backlog} unacknowledged events after ${o.drainTimeoutMs / 1000} s`);
  if (problem) problems.push(problem);
  if (c.doubleCounted) problems.push(`${c.doubleCounted} events were counted more than once`);
  if (seen.dlq !== l.malformed.deadLetters) problems.push(`the DLQ holds ${seen.dlq} records; ${l.malformed.deadLetters} malformed publishes were sent`);
  if (agentRejected !== l.malformed.rejectedByAgent) problems.push(`the agents rejected ${agentRejected} events; ${l.malformed.rejectedByAgent} malformed ones were sent`);
  for (const ch of stack.children) if (!ch.running) problems.push(`${ch.name} exited during the run; see ${ch.logFile}`);
  if (archive?.lost) problems.push(`${archive.lost} events are missing from the archive`);
  if (archive?.doubled) problems.push(`${archive.doubled} events are in the archive more than once`);
  if (run) {
    for (const r of run.records) {
      if (r.note) problems.push(`${r.kind} ${r.target} at ${r.atS}s: ${r.note}`);
      else if (!r.alert) problems.push(`${r.kind} ${r.target} at ${r.atS}s opened no alert`);
      else if (r.alert.resolvedAtS === null) problems.push(`the alert for ${r.kind} ${r.target} at ${r.atS}s (${r.alert.name}) did not resolve`);
    }
    if (run.records.length < run.plan.length) problems.push(`${run.plan.length - run.records.length} planned faults were not injected`);
    for (const u of run.unplanned) problems.push(`${u} exited on its own and was restarted`);
    if (run.resent === 0) problems.push('the rebuilt agent re-sent nothing: the old-outbox re-send was not exercised');
    for (const a of sim.agents) if (a instanceof ProcessAgent && !a.proc.running) problems.push(`${a.proc.name} exited during the run; see ${a.proc.logFile}`);
  }
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
    uncounted: c.lost,
    lost,
    inFlight,
    doubleCounted: c.doubleCounted,
    dlqExpected: l.malformed.deadLetters,
    dlqCounted: seen.dlq,
    agentRejectsExpected: l.malformed.rejectedByAgent,
    agentRejected,
    throughputEps: seen.spanMs > 0 ? Math.round((seen.rawDistinct * 1000) / seen.spanMs) : 0,
    latencyMs: seen.latencyMs,
    latencyAfterWarmupMs: seen.latencyAfterWarmupMs,
    burstsInjected: c.burstsInjected,
    burstsAlerted: c.burstsAlerted,
    otherSpikeAlerts: c.otherSpikeAlerts,
    drained,
    drainS,
    ...(stack.kafka && { kafka: { version: stack.kafka.version, partitions: o.partitions } }),
    ...(archive && { archive }),
    problems,
    mismatches: [...c.mismatches, ...(archive?.mismatches ?? [])],
    dir: o.dir,
    ...(run && { chaos: run.report(o.scenario.seed) }),
  };
}
