/** `vcam sim` (load with ground truth) and `vcam verify` (a whole stack checked against it). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient } from '@clickhouse/client';
import { EXIT, parseOrHelp } from '../common/cli.js';
import { CLICKHOUSE_AUTH_OPTIONS, clientAuth } from '../common/clickhouse.js';
import { defineCommand, type Config } from '../common/config.js';
import { ConfigError } from '../common/errors.js';
import { LOG_LEVELS } from '../common/log.js';
import { geoCsv, loadSimGeos } from './geos.js';
import { SCENARIO_DEFAULTS as D, type Scenario } from './scenario.js';
import { Simulation, type Progress } from './sim.js';
import { planFaults } from './chaos.js';
import { verify } from './verify.js';

const share = (what: string, d: number) => ({ type: 'number', default: d, description: `share of sends (0..1) that ${what}` }) as const;

export const SCENARIO_OPTIONS = {
  rate: { type: 'int', default: D.rate, description: 'camera sends per second' },
  duration: { type: 'duration', default: `${D.durationMs / 1000}s`, description: 'how long to generate' },
  schedule: { type: 'list', description: 'rate steps instead of a steady --rate, e.g. 0s:2000,30s:10000,90s:500' },
  dailyAmplitude: { type: 'number', default: D.dailyAmplitude, description: '0..1: follow a daily curve, ±this share around --rate, peak at 15:00 UTC' },
  agents: { type: 'int', default: D.agents, description: 'simulated agents (gateways), each with its own SQLite outbox' },
  cameras: { type: 'int', default: D.cameras, description: 'simulated cameras, spread over the agents and geos' },
  geos: { type: 'int', default: D.geos, description: 'geos (ids 100…); the busiest get most events (Zipf)' },
  zipf: { type: 'number', default: D.zipf, description: 'Zipf exponent of the skew over geos and cameras' },
  retryShare: share('repeat a recent event (camera retries)', D.retryShare),
  oldResendShare: share('re-send an event older than the hot dedup horizon', D.oldResendShare),
  lateShare: share('are late (35 s to --late-max behind)', D.lateShare),
  lateMax: { type: 'duration', default: `${D.lateMaxMs / 60_000}m`, description: 'how far behind late events can be' },
  outOfOrderShare: share('are out of order (up to 5 s behind)', D.outOfOrderShare),
  malformedShare: share('are malformed (half rejected by agents, half dead-lettered by the bridge)', D.malformedShare),
  bursts: { type: 'int', default: D.bursts, description: 'bursts to inject (-1: one every --burst-every after --burst-warmup)' },
  burstFactor: { type: 'number', default: D.burstFactor, description: "a burst multiplies its geo's rate by this for one minute" },
  burstWarmup: { type: 'duration', default: `${D.burstWarmupMs / 60_000}m`, description: 'ordinary traffic before the first burst' },
  burstEvery: { type: 'duration', default: `${D.burstEveryMs / 60_000}m`, description: 'time between bursts' },
  hotHorizon: { type: 'duration', default: `${D.hotHorizonMs / 60_000}m`, description: "the processor's hot dedup horizon: old re-sends are older than this (verify also starts the processor with it)" },
  seed: { type: 'int', default: D.seed, description: 'random seed: the same seed gives the same traffic' },
} as const;

type ScenarioConfig = Config<typeof SCENARIO_OPTIONS>;

export function scenarioFrom(c: ScenarioConfig): Scenario {
  const schedule = (c.schedule ?? []).map((step) => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?:(\d+)$/.exec(step.trim());
    if (!m) throw new ConfigError(`--schedule step "${step}" must look like 30s:10000 (time from the start : sends per second)`);
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
    return { atMs: Number(m[1]) * unit, rate: Number(m[3]) };
  });
  const s: Scenario = {
    seed: c.seed,
    rate: c.rate,
    durationMs: c.duration,
    schedule,
    dailyAmplitude: c.dailyAmplitude,
    agents: c.agents,
    cameras: c.cameras,
    geos: c.geos,
    zipf: c.zipf,
    retryShare: c.retryShare,
    oldResendShare: c.oldResendShare,
    lateShare: c.lateShare,
    lateMaxMs: c.lateMax,
    outOfOrderShare: c.outOfOrderShare,
    outOfOrderMaxMs: D.outOfOrderMaxMs,
    malformedShare: c.malformedShare,
    bursts: c.bursts,
    burstFactor: c.burstFactor,
    burstWarmupMs: c.burstWarmup,
    burstEveryMs: c.burstEvery,
    hotHorizonMs: c.hotHorizon,
  };
  for (const k of ['retryShare', 'oldResendShare', 'lateShare', 'outOfOrderShare', 'malformedShare', 'dailyAmplitude'] as const) {
    if (!(s[k] >= 0 && s[k] <= 1)) throw new ConfigError(`--${k.replace(/[A-Z]/g, (x) => `-${x.toLowerCase()}`)} must be between 0 and 1, got ${s[k]}`);
  }
  if (s.retryShare + s.oldResendShare + s.malformedShare > 1) throw new ConfigError('--retry-share, --old-resend-share and --malformed-share add up to more than 1');
  if (s.lateShare + s.outOfOrderShare > 1) throw new ConfigError('--late-share and --out-of-order-share add up to more than 1');
  if (s.rate <= 0 && schedule.length === 0) throw new ConfigError('--rate must be above 0');
  if (s.agents < 1 || s.geos < 1) throw new ConfigError('--agents and --geos must be at least 1');
  if (s.cameras < s.geos) throw new ConfigError(`--cameras (${s.cameras}) must be at least --geos (${s.geos}): every geo needs a camera`);
  if (s.lateMaxMs < 35_000) throw new ConfigError('--late-max must be at least 35s (late means more than the 30 s lateness bound)');
  if (s.burstFactor <= 1 && s.bursts !== 0) throw new ConfigError('--burst-factor must be above 1 (or --bursts 0)');
  return s;
}

/** The first SIGINT/SIGTERM winds down in order; a second one exits at once (children are killed on exit). */
function onSignals(first: () => void): void {
  let count = 0;
  const handler = () => (++count === 1 ? first() : process.exit(130));
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** One line, rewritten in place on a terminal; JSON lines otherwise. */
function progressPrinter(tty: boolean): (phase: string, p?: Progress) => void {
  let lastPhase = '';
  return (phase, p) => {
    if (!tty) {
      if (p || phase !== lastPhase) process.stderr.write(`${JSON.stringify({ phase, ...p })}\n`);
    } else if (p) {
      process.stderr.write(`\r\x1b[K${phase}  ${p.elapsedS.toFixed(0)}s  rate ${p.rateAchieved}/s  sent ${p.sent}  acknowledged ${p.acknowledged}  backlog ${p.backlog}  agents connected ${p.connectedAgents}`);
    } else {
      process.stderr.write(`${lastPhase === 'running' ? '\n' : ''}${phase}…\n`);
    }
    lastPhase = phase;
  };
}

export const simCommand = defineCommand({
  name: 'vcam sim',
  summary:
    'Simulates a camera fleet: real agents (SQLite outboxes) publishing to a bridge at a steady rate or a schedule, with\n' +
    'Zipf skew, bursts, retries, very late re-sends, late, out-of-order and malformed events. Writes the geo CSV and a\n' +
    'ground-truth ledger (distinct events per geo per minute, per device, bursts, malformed sent).',
  options: {
    mqttUrl: { type: 'string', default: 'mqtt://127.0.0.1:1883', description: "the bridge's MQTT address" },
    agentsFile: { type: 'string', description: "register the simulated agents in the bridge's agents file (without it, the bridge must --allow-anonymous)" },
    dataDir: { type: 'string', description: 'outboxes, ledger and geo CSV (default: a new temporary directory)' },
    clickhouseUrl: { type: 'string', description: 'also load the geo CSV into this ClickHouse' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    drainTimeout: { type: 'duration', default: '60s', description: 'after generating, how long to wait for the agents to deliver their backlog' },
    progress: { type: 'boolean', default: process.stderr.isTTY ?? false, description: 'a live progress line on the terminal (JSON lines otherwise)' },
    ...SCENARIO_OPTIONS,
  },
});

export async function simMain(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(simCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  const scenario = scenarioFrom(c);
  const dataDir = resolve(c.dataDir ?? mkdtempSync(join(tmpdir(), 'vcam-sim-')));
  mkdirSync(dataDir, { recursive: true });
  const sim = new Simulation({ scenario, mqttUrl: c.mqttUrl, dataDir, agentsFile: c.agentsFile });
  const csv = join(dataDir, 'geos.csv');
  writeFileSync(csv, geoCsv(sim.geos));
  process.stderr.write(`vcam sim: data in ${dataDir}; geo CSV ${csv}\n`);
  if (c.clickhouseUrl) {
    const client = createClient({ url: c.clickhouseUrl, ...clientAuth(c) });
    await loadSimGeos(client, sim.geos, csv).finally(() => client.close());
  }
  const show = progressPrinter(c.progress);
  onSignals(() => sim.stop());
  await sim.start();
  sim.on('progress', (p) => show('running', p));
  await sim.run();
  show('draining');
  const drained = await sim.drain(c.drainTimeout);
  const final = sim.progress();
  await sim.close();
  const ledgerFile = join(dataDir, 'ledger.json');
  writeFileSync(ledgerFile, JSON.stringify(sim.ledger));
  process.stdout.write(`${JSON.stringify({ ...final, drained, unique: sim.ledger.unique, sentByKind: sim.ledger.sent, malformed: sim.ledger.malformed, bursts: sim.bursts, ledger: ledgerFile, geoCsv: csv })}\n`);
  return drained ? EXIT.OK : EXIT.FAILURE;
}

export const verifyCommand = defineCommand({
  name: 'vcam verify',
  summary:
    'Runs a complete stack on loopback in a temporary directory (embedded ClickHouse, bridge, processor; with --kafka the\n' +
    'local Apache Kafka broker and separate bridge and processor processes), drives it with the simulator, waits until everything\n' +
    'is delivered, and compares ClickHouse with the ground truth. Prints one JSON report. Exit 0 when every event was\n' +
    'counted once and the dead letters match the malformed events sent; 1 otherwise. Events not counted by the drain timeout\n' +
    'are reported as lost only when nothing was left in the agents or in Kafka to count them; otherwise lost is null and\n' +
    'the report says the pipeline fell behind (uncounted, inFlight).',
  options: {
    kafka: { type: 'boolean', default: false, description: 'Kafka mode (default: single-node)' },
    chaos: {
      type: 'boolean',
      default: false,
      description:
        "Kafka mode with faults at times drawn from --seed: kill -9 of agents, bridges and processors, ClickHouse stopped, the Kafka broker killed (-9) and restarted, an agent cut off and rebuilt from an old outbox copy (needs Debian's prometheus, to check the alerts)",
    },
    chaosKills: { type: 'int', default: 20, description: 'chaos: kill -9s spread over agents, bridges and processors' },
    chaosClickhouseOutage: { type: 'duration', default: '60s', description: 'chaos: how long ClickHouse is stopped' },
    chaosKafkaOutage: { type: 'duration', default: '30s', description: 'chaos: how long the Kafka broker is down' },
    chaosCut: { type: 'duration', default: '90s', description: 'chaos: how long the last agent is cut off from its bridge' },
    chaosPauseMin: { type: 'duration', default: '3s', description: 'chaos: shortest time a killed component stays down' },
    chaosPauseMax: { type: 'duration', default: '10s', description: 'chaos: longest time a killed component stays down' },
    json: { type: 'boolean', default: false, description: 'only the JSON report on stdout, progress as JSON lines on stderr' },
    keep: { type: 'boolean', default: false, description: 'keep the temporary directory (it is kept anyway when verify fails)' },
    partitions: { type: 'int', default: 4, description: 'Kafka mode: partitions of the events topic on the local broker' },
    alertBaseline: { type: 'duration', default: '2m', description: "the processor's spike baseline for this run (short, so bursts can be judged in minutes)" },
    drainTimeout: { type: 'duration', default: '120s', description: 'how long the pipeline may take to deliver everything after the simulator stops' },
    archive: { type: 'boolean', default: false, description: 'also archive to a Delta Lake table on a local S3 (S3Proxy; Java 17+, `vcam s3 fetch` once) and check it against the ground truth' },
    archiveEvery: { type: 'duration', default: '5s', description: 'with --archive: how often the archiver runs a batch' },
    break: { type: 'string', choices: ['none', 'dedup'], default: 'none', description: 'break the pipeline on purpose to see verify fail (dedup: the processor counts every copy)' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: "components' log level (logs are in <dir>/logs)" },
    ...SCENARIO_OPTIONS,
  },
});

export async function verifyMain(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(verifyCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  const scenario = scenarioFrom(c);
  const dir = mkdtempSync(join(tmpdir(), 'vcam-verify-'));
  const abort = new AbortController();
  onSignals(() => abort.abort());
  const show = progressPrinter(!c.json && (process.stderr.isTTY ?? false));
  if (c.chaos && c.chaosPauseMin > c.chaosPauseMax) throw new ConfigError('--chaos-pause-min must not exceed --chaos-pause-max');
  const chaos = c.chaos ? { kills: c.chaosKills, clickhouseOutageMs: c.chaosClickhouseOutage, kafkaOutageMs: c.chaosKafkaOutage, cutMs: c.chaosCut, pauseMinMs: c.chaosPauseMin, pauseMaxMs: c.chaosPauseMax } : undefined;
  if (chaos) {
    // Refuse an impossible plan before starting anything (names as the stack will give them).
    const agents = Array.from({ length: scenario.agents }, (_, i) => `agent-sim-${i + 1}`);
    planFaults(scenario.seed, scenario.durationMs, scenario.hotHorizonMs, { agents, bridges: ['bridge-1', 'bridge-2'], processors: ['processor-1', 'processor-2'] }, chaos);
    if (c.chaosClickhouseOutage > 0.35 * scenario.durationMs || c.chaosKafkaOutage > 0.35 * scenario.durationMs)
      throw new ConfigError('--chaos-clickhouse-outage and --chaos-kafka-outage must each fit in 35% of --duration (they are placed apart)');
    if (scenario.agents < 2) throw new ConfigError('--chaos needs at least 2 --agents (one of them is cut off)');
    process.stderr.write(`vcam verify --chaos: seed ${scenario.seed} (the same --seed replays the same traffic and the same faults)\n`);
  }
  const r = await verify({
    mode: c.kafka || c.chaos ? 'kafka' : 'single-node',
    chaos,
    ...(c.archive && { archive: { everyMs: c.archiveEvery } }),
    scenario,
    dir,
    breakDedup: c.break === 'dedup',
    partitions: c.partitions,
    alertBaselineMinutes: Math.max(1, Math.round(c.alertBaseline / 60_000)),
    drainTimeoutMs: c.drainTimeout,
    logLevel: c.logLevel,
    signal: abort.signal,
    onProgress: show,
  }).catch((err: Error) => {
    if (abort.signal.aborted) return undefined;
    throw Object.assign(err, { message: `${err.message}\n(logs kept in ${dir}/logs)` });
  });
  if (!r) {
    process.stderr.write('vcam verify: interrupted; everything it started is stopped\n');
    return 130;
  }
  if (r.ok && !c.keep) rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(r, null, c.json ? undefined : 2)}\n`);
  if (!r.ok && !c.json) process.stderr.write(`vcam verify FAILED: ${r.problems.join('; ')}\n(logs kept in ${dir})\n`);
  return r.ok ? EXIT.OK : EXIT.FAILURE;
}
