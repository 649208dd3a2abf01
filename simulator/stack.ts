/**
 * A complete vcam stack on loopback for `vcam verify`: every component a real child process
 * (`vcam clickhouse`, `vcam bridge`, `vcam processor`), plus the local Apache Kafka broker in Kafka mode.
 * Each child logs to `<dir>/logs/<name>.log`; stop() ends them in reverse order and kills
 * whatever does not exit in time, so nothing is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../common/http.js';
import { VCAM_BIN } from '../common/paths.js';
import { sleep } from '../common/retry.js';
import { Kafka, logLevel } from 'kafkajs';
import { PROCESSOR_GROUP, TOPICS } from '../common/kafka.js';
import { LocalKafka } from '../kafka/index.js';
import { startLocalS3, type LocalS3 } from '../s3/index.js';

export type Mode = 'single-node' | 'kafka';

export interface StackOptions {
  mode: Mode;
  dir: string;
  /** false only to break the pipeline on purpose (verify --break dedup). */
  dedup: boolean;
  alertBaselineMinutes: number;
  hotHorizonMs: number;
  logLevel: string;
  partitions: number;
  /** Kafka mode: bridges and processors (default 1 each); chaos runs two of each, so one survives a kill. */
  bridges?: number;
  processors?: number;
}

/**
 * The caller's VCAM_* settings must not configure the stack under test (a VCAM_KAFKA_BROKERS
 * meant for production would send simulated events there): children get flags only.
 */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VCAM_') || k === 'VCAM_FROM_SOURCE'));
}

/**
 * VCAM_BENCH_PROF=<dir>: each child writes a V8 CPU profile there when it exits, named for its
 * component (summarise with bench/cpuprofile.ts). Node refuses --cpu-prof in NODE_OPTIONS.
 */
function profiling(name: string): string[] {
  const dir = process.env.VCAM_BENCH_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
}

export class Child {
  child!: ChildProcess;
  exited!: Promise<number | string>;
  readonly logFile: string;
  /** Times this child was started again after it ended (chaos restarts it after kill -9). */
  restarts = 0;

  constructor(
    readonly name: string,
    private readonly args: string[],
    logDir: string,
    /** Answers 2xx when the child is ready (its /healthz or /ping). */
    readonly healthUrl?: string,
    readonly metricsUrl?: string,
  ) {
    this.logFile = join(logDir, `${name}.log`);
    this.spawn();
  }

  private spawn(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(process.execPath, [...profiling(this.name), VCAM_BIN, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    this.child.stdout!.pipe(log, { end: false });
    this.child.stderr!.pipe(log, { end: false });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private stopped = false;

  /** Starts the same command again (same ports, same data), after it ended; never after stop(). */
  restart(): void {
    if (this.stopped) throw new Error(`${this.name} was stopped`);
    if (this.running) throw new Error(`${this.name} is still running`);
    this.restarts++;
    this.spawn();
  }

  async kill9(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Waits until the health URL answers 2xx; fails early, with the log's tail, if the child exits. */
  async healthy(timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
    const url = this.healthUrl;
    if (!url) return;
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && !signal?.aborted) {
      if (!this.running) throw new Error(`${this.name} exited during startup (${this.child.exitCode ?? this.child.signalCode}); its log:\n${this.logTail()}`);
      if (
        await fetch(url).then(
          (r) => r.ok,
          () => false,
        )
      )
        return;
      await sleep(200);
    }
    throw new Error(`${this.name} did not become healthy at ${url} within ${timeoutMs / 1000} s; its log:\n${this.logTail()}`);
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; `final` (the default) means it will not be restarted. */
  async stop(timeoutMs = 30_000, final = true): Promise<number | string> {
    if (final) this.stopped = true;
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export class Stack {
  readonly children: Child[] = [];
  kafka?: LocalKafka;
  /** With `archive`: the local S3 holding the Delta table at s3://lake/events. */
  s3?: LocalS3;
  /** The archiver's /metrics. */
  archiveMetricsUrl?: string;
  /** One per bridge, in order. */
  mqttUrls: string[] = [];
  clickhouseUrl = '';
  /** The password the embedded ClickHouse made at start; every component is pointed at this file. */
  readonly clickhousePasswordFile: string;
  readonly agentsFile: string;
  readonly logDir: string;

  constructor(readonly o: StackOptions) {
    this.logDir = join(o.dir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
    this.agentsFile = join(o.dir, 'agents.json');
    this.clickhousePasswordFile = join(o.dir, 'clickhouse', 'clickhouse.secret');
  }

  get mqttUrl(): string {
    return this.mqttUrls[0] ?? '';
  }

  private async start(name: string, args: string[], httpPort: number, health = '/healthz'): Promise<Child> {
    const c = new Child(name, [...args, '--log-level', this.o.logLevel], this.logDir, `http://127.0.0.1:${httpPort}${health}`, health === '/healthz' ? `http://127.0.0.1:${httpPort}/metrics` : undefined);
    this.children.push(c);
    await c.healthy();
    return c;
  }

  child(name: string): Child {
    const c = this.children.find((x) => x.name === name);
    if (!c) throw new Error(`no component named ${name}`);
    return c;
  }

  async up(): Promise<void> {
    const o = this.o;
    const chPort = await freePort();
    this.clickhouseUrl = `http://127.0.0.1:${chPort}`;
    await this.start('clickhouse', ['clickhouse', '--data-dir', join(o.dir, 'clickhouse'), '--port', String(chPort)], chPort, '/ping');
    const alerts = ['--alert-baseline', `${o.alertBaselineMinutes}m`];
    const dedup = [...(o.dedup ? [] : ['--no-dedup']), '--hot-horizon', `${o.hotHorizonMs}ms`];
    let downstream: string[];
    if (o.mode === 'kafka') {
      this.kafka = new LocalKafka({ dataDir: join(o.dir, 'kafka'), partitions: o.partitions });
      await this.kafka.start();
      const brokers = this.kafka.bootstrap;
      for (let i = 1; i <= (o.processors ?? 1); i++) {
        const httpPort = await freePort();
        // A short session: a member killed by chaos leaves the group in seconds, not 30.
        await this.start(
          `processor-${i}`,
          ['processor', '--kafka-brokers', brokers, '--clickhouse-url', this.clickhouseUrl, '--clickhouse-password-file', this.clickhousePasswordFile, '--http-port', String(httpPort), '--session-timeout', '6s', ...alerts, ...dedup],
          httpPort,
        );
      }
      // The bridges' production settings: idempotent producer, default linger.
      downstream = ['--kafka-brokers', brokers];
    } else {
      downstream = ['--clickhouse-url', this.clickhouseUrl, '--clickhouse-password-file', this.clickhousePasswordFile, ...alerts, ...dedup];
    }
    // Single-node mode has one bridge: it hosts the processor.
    const bridges = o.mode === 'kafka' ? (o.bridges ?? 1) : 1;
    for (let i = 1; i <= bridges; i++) {
      const [mqttPort, httpPort] = [await freePort(), await freePort()];
      // The bridge re-reads the agents file, so the simulator can register its agents after this.
      await this.start(`bridge-${i}`, ['bridge', '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), '--agents-file', this.agentsFile, ...downstream], httpPort);
      this.mqttUrls.push(`mqtt://127.0.0.1:${mqttPort}`);
    }
  }

  /** The archiver and its S3, started once the pipeline is up. */
  async startArchive(everyMs: number): Promise<void> {
    this.s3 = await startLocalS3({ dataDir: join(this.o.dir, 's3'), bucket: 'lake' });
    const credentials = join(this.o.dir, 's3', 's3.credentials');
    writeFileSync(credentials, `AWS_ACCESS_KEY_ID=${this.s3.identity}\nAWS_SECRET_ACCESS_KEY=${this.s3.credential}\n`, { mode: 0o600 });
    const httpPort = await freePort();
    await this.start(
      'archive',
      [
        'archive',
        '--archive-url',
        's3://lake/events',
        '--s3-endpoint',
        this.s3.endpoint,
        '--s3-credentials-file',
        credentials,
        '--every',
        `${everyMs}ms`,
        '--clickhouse-url',
        this.clickhouseUrl,
        '--clickhouse-password-file',
        this.clickhousePasswordFile,
        '--http-port',
        String(httpPort),
      ],
      httpPort,
    );
    this.archiveMetricsUrl = `http://127.0.0.1:${httpPort}/metrics`;
  }

  /**
   * Events in Kafka the processors' group has not committed yet; undefined when Kafka cannot
   * say. 0 in single-node mode: nothing waits between the bridge and ClickHouse there.
   */
  async kafkaBacklog(): Promise<number | undefined> {
    if (!this.kafka) return 0;
    // Not `retries: 0`: kafkajs' admin then failed every call ("No brokers in the broker pool"),
    // so verify never saw an empty backlog and every backlog it reported was unknown.
    const admin = new Kafka({ clientId: 'vcam-verify', brokers: [this.kafka.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 2 } }).admin();
    try {
      await admin.connect();
      const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId: PROCESSOR_GROUP, topics: [TOPICS.events] }), admin.fetchTopicOffsets(TOPICS.events)]);
      const done = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]));
      return ends.reduce((n, e) => n + Number(e.high) - Math.max(Number(e.low), done.get(e.partition) ?? -1), 0);
    } catch {
      return undefined;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Stops the components in reverse order of start: the archiver, bridges (draining), processors, ClickHouse; then Kafka and S3. */
  async stop(): Promise<void> {
    for (const c of [...this.children].reverse()) await c.stop();
    await this.kafka?.stop();
    await this.s3?.stop();
  }

  /** Last resort on exit: no child outlives verify. */
  killAll(): void {
    for (const c of this.children) if (c.running) c.child.kill('SIGKILL');
  }
}
