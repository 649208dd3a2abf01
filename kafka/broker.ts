/**
 * A real Apache Kafka broker on loopback: one KRaft node (broker and controller in one JVM) with
 * its own ports and data directory, for `vcam kafka`, `vcam up --kafka`, verify, chaos and the
 * tests. It is the release kafka/pom.xml pins, unmodified, with kafka/broker.properties.
 *
 *   const kafka = await startLocalKafka({ dataDir, partitions: 16 });
 *   kafka.brokers               // ['127.0.0.1:PORT'] for kafkajs
 *   await kafka.kill();         // kill -9: the log stays on disk
 *   await kafka.start();        // same ports, same data, log recovery
 *   await kafka.stop();         // SIGTERM: controlled shutdown
 *
 * The JVM gets a small heap, the serial collector and two JIT threads (two-core machines), and
 * dies with the process that started it (setpriv --pdeathsig), so a test worker killed by a
 * timeout leaves no broker behind.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel, type ITopicConfig } from 'kafkajs';
import { freePort, portOpen } from '../common/http.js';
import { TOPICS } from '../common/kafka.js';
import { VcamError } from '../common/errors.js';
import { JavaChild, smallJvm } from '../common/jvm.js';
import { sleep } from '../common/retry.js';
import { KAFKA_DIR, kafkaClasspath, kafkaHome, requireJava } from './jars.js';

const execFileP = promisify(execFile);
const LOG4J = `-Dlog4j2.configurationFile=${join(KAFKA_DIR, 'log4j2.properties')}`;

export interface LocalKafkaOptions {
  /** Holds the broker's log (`log/`), its generated server.properties and its output (`broker.log`). */
  dataDir: string;
  /** Client port on 127.0.0.1; 0 (default) picks a free one, kept across restarts. */
  port?: number;
  /** KRaft controller port on 127.0.0.1; 0 (default) picks a free one. */
  controllerPort?: number;
  /** Partitions of `vcam.events` (created if missing). Default 16. */
  partitions?: number;
  /** Partitions of `vcam.events.dlq`. Default 4. */
  dlqPartitions?: number;
  /** Maximum Java heap in MiB. Default 512. */
  heapMb?: number;
  /** Where the broker's own output goes besides `broker.log`: a line callback (e.g. to stderr). */
  onOutput?: (line: string) => void;
  /** How long a start may take before it fails. Default 90 s. */
  startTimeoutMs?: number;
  /** Kafka's install (jars); default the `vcam kafka fetch` cache. */
  home?: string;
}

export class LocalKafka {
  readonly dataDir: string;
  port = 0;
  controllerPort = 0;
  /** The release actually on the classpath (from its jar's name), e.g. "4.1.1". */
  readonly version: string;
  private readonly o: LocalKafkaOptions;
  private readonly classpath: string;
  private readonly jvm: JavaChild;
  /** `java -version` once per broker, not at every restart. */
  private javaChecked?: Promise<void>;

  constructor(o: LocalKafkaOptions) {
    this.o = o;
    this.dataDir = o.dataDir;
    const home = o.home ?? kafkaHome();
    this.classpath = kafkaClasspath(home);
    const jar = readdirSync(join(home, 'libs')).find((f) => /^kafka_2\.13-.+\.jar$/.test(f));
    this.version = jar ? jar.replace(/^kafka_2\.13-(.+)\.jar$/, '$1') : 'unknown';
    this.jvm = new JavaChild({ logFile: join(this.dataDir, 'broker.log'), onOutput: o.onOutput });
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  get brokers(): string[] {
    return [this.bootstrap];
  }

  get pid(): number | undefined {
    return this.jvm.pid;
  }

  get running(): boolean {
    return this.jvm.running;
  }

  /** Formats the store on first use, starts the JVM, waits until it serves, creates vcam's topics. */
  async start(): Promise<void> {
    if (this.running) return;
    await (this.javaChecked ??= requireJava());
    this.port ||= this.o.port || (await freePort());
    this.controllerPort ||= this.o.controllerPort || (await freePort());
    mkdirSync(this.dataDir, { recursive: true });
    const props = this.writeProperties();
    if (!existsSync(join(this.dataDir, 'log', 'meta.properties'))) await this.format(props);

    this.jvm.start([...smallJvm(this.o.heapMb ?? 512), LOG4J, '-cp', this.classpath, 'kafka.Kafka', props]);
    try {
      await this.waitServing(this.o.startTimeoutMs ?? 90_000);
      await this.ensureTopics();
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** kill -9: no controlled shutdown, no flush beyond what the OS has; the log stays. */
  kill(): Promise<void> {
    return this.jvm.kill();
  }

  /** SIGTERM and a controlled shutdown; SIGKILL after 30 s. */
  stop(): Promise<void> {
    return this.jvm.stop(30_000);
  }

  private writeProperties(): string {
    const shared = readFileSync(join(KAFKA_DIR, 'broker.properties'), 'utf8');
    const file = join(this.dataDir, 'server.properties');
    writeFileSync(
      file,
      `${shared}
# Written by vcam for this data directory; loopback only.
listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}
controller.quorum.voters=1@127.0.0.1:${this.controllerPort}
log.dirs=${join(this.dataDir, 'log')}
num.partitions=${this.o.partitions ?? 16}
`,
    );
    return file;
  }

  private async format(props: string): Promise<void> {
    let clusterId: string;
    do clusterId = randomBytes(16).toString('base64url');
    while (clusterId.startsWith('-'));
    try {
      await execFileP('java', ['-Xmx256m', '-XX:+UseSerialGC', LOG4J, '-cp', this.classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props], { timeout: 60_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message?: string };
      throw new VcamError('UNAVAILABLE', `formatting the Kafka store in ${this.dataDir} failed: ${(e.stdout || '') + (e.stderr || '') || e.message}`);
    }
  }

  private async waitServing(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new VcamError('UNAVAILABLE', `the Kafka broker exited during start-up (see ${join(this.dataDir, 'broker.log')}):\n${this.jvm.lastOutput()}`);
      if (await portOpen(this.port)) break;
      if (Date.now() > deadline) throw new VcamError('TIMEOUT', `the Kafka broker did not open 127.0.0.1:${this.port} within ${timeoutMs} ms:\n${this.jvm.lastOutput()}`, { retriable: true });
      await sleep(100);
    }
  }

  /** vcam's topics through the admin API, as production creates them; the group coordinator warmed. */
  private async ensureTopics(): Promise<void> {
    const admin = new Kafka({ clientId: 'vcam-local-kafka', brokers: this.brokers, logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1_000 } }).admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const wanted: ITopicConfig[] = [
        { topic: TOPICS.events, numPartitions: this.o.partitions ?? 16 },
        { topic: TOPICS.dlq, numPartitions: this.o.dlqPartitions ?? 4 },
      ].filter((t) => !existing.has(t.topic));
      if (wanted.length) await admin.createTopics({ topics: wanted, waitForLeaders: true });
      // The first group request makes the broker create and load __consumer_offsets; doing it
      // here keeps that one-time wait out of the first consumer's start.
      // kafkajs' admin does not retry a coordinator that moved or is still loading: we do.
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.fetchOffsets({ groupId: 'vcam-local-kafka-warmup', topics: [TOPICS.events] });
          break;
        } catch (err) {
          if (attempt >= 100 || !(err as { retriable?: boolean }).retriable) throw err;
          await sleep(200);
        }
      }
    } finally {
      await admin.disconnect();
    }
  }
}

export async function startLocalKafka(o: LocalKafkaOptions): Promise<LocalKafka> {
  const kafka = new LocalKafka(o);
  await kafka.start();
  return kafka;
}
