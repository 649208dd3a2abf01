/**
 * kafkajs against Confluent's librdkafka-based client (`@confluentinc/kafka-javascript`, through
 * its KafkaJS-compatible API) on the local Apache Kafka broker: CPU per event to produce the
 * bridge's messages (key, JSON value, two headers; idempotent, gzip, acks = all) and to consume
 * them again (eachBatch, each value parsed). Each side runs in a process of its own, measured
 * from after connect (process CPU, so librdkafka's threads count), so the two clients' garbage
 * and threads do not mix.
 *
 * Opt-in (`npm run bench -- kafka-clients`): the Confluent client is not a dependency. Its
 * prebuilt binary cannot be downloaded here, so it is built from its bundled librdkafka against
 * Debian's libraries (about 2 minutes on two cores):
 *   apt-get install -y libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev
 *   CKJS_LINKING=dynamic npm install --prefix .scratch/ckjs @confluentinc/kafka-javascript
 *   VCAM_BENCH_CONFLUENT_DIR=.scratch/ckjs npm run bench -- kafka-clients
 * (`CKJS_LINKING=dynamic`: the default static build downloads zlib, OpenSSL and zstd sources.)
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CompressionTypes, Kafka, logLevel, type Message } from 'kafkajs';
import { DevicePartitions } from '../bridge/partitioner.js';
import { startLocalKafka } from '../kafka/index.js';
import { ratio } from './measure.js';

const execFileP = promisify(execFile);
const EVENTS = 200_000;
/** The bridge's largest send (bridge/kafka.ts). */
const PER_SEND = 5_000;
const PARTITIONS = 16;
const ROUNDS = 2;
type Lib = 'kafkajs' | 'confluent';
type Role = 'produce' | 'consume';
interface Side {
  cpuMicrosPerEvent: number;
  eventsPerSec: number;
  rssMb: number;
}

function messages(from: number, n: number): Message[] {
  const now = Date.now();
  const out: Message[] = [];
  for (let seq = from; seq < from + n; seq++) {
    const agentId = `agent-${seq % 4}`;
    const deviceId = `cam-${seq % 97}`;
    const e = { eventId: `${deviceId}#${agentId}-${seq}-${(seq * 2654435761) % 2 ** 32}`, deviceId, geoId: seq % 300, ts: now - 60_000 + seq, type: seq % 3 ? 'person' : 'vehicle', confidence: 0.8, agentId, seq, receivedAt: now };
    out.push({ key: deviceId, value: JSON.stringify(e), headers: { eventId: e.eventId, agentId } });
  }
  return out;
}

// Not a dependency, so no types to import; it mirrors kafkajs' API (checked by running it).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function confluent(): any {
  const dir = process.env.VCAM_BENCH_CONFLUENT_DIR;
  if (!dir || !existsSync(join(dir, 'node_modules/@confluentinc/kafka-javascript'))) {
    throw new Error('kafka-clients: set VCAM_BENCH_CONFLUENT_DIR to a directory where @confluentinc/kafka-javascript is installed (see bench/kafka-clients.ts for how to build it)');
  }
  return createRequire(join(resolve(dir), 'package.json'))('@confluentinc/kafka-javascript').KafkaJS;
}

/** One side, in this process: the figures from after connect to the last event. */
async function side(lib: Lib, role: Role, bootstrap: string, topic: string): Promise<Side> {
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  const start = () => {
    cpu0 = process.cpuUsage();
    t0 = performance.now();
  };
  const K = lib === 'confluent' ? confluent() : undefined;
  const kafka = K ? new K.Kafka({ kafkaJS: { clientId: 'bench', brokers: [bootstrap], logLevel: K.logLevel.NOTHING } }) : new Kafka({ clientId: 'bench', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  if (role === 'produce') {
    const p = K
      ? kafka.producer({ kafkaJS: { idempotent: true, acks: -1, compression: K.CompressionTypes.GZIP }, 'linger.ms': 50 })
      : (kafka as Kafka).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: new DevicePartitions().createPartitioner });
    await p.connect();
    start();
    for (let i = 0; i < EVENTS; i += PER_SEND) {
      if (K) await p.send({ topic, messages: messages(i, PER_SEND) });
      else await p.sendBatch({ acks: -1, compression: CompressionTypes.GZIP, topicMessages: [{ topic, messages: messages(i, PER_SEND) }] });
    }
    await p.disconnect();
  } else {
    const c = K ? kafka.consumer({ kafkaJS: { groupId: `bench-${lib}`, fromBeginning: true }, 'js.consumer.max.batch.size': -1 }) : (kafka as Kafka).consumer({ groupId: `bench-${lib}`, maxBytes: 50 << 20 });
    await c.connect();
    // Confluent's client takes fromBeginning at creation only.
    await c.subscribe(K ? { topic } : { topic, fromBeginning: true });
    let seen = 0;
    const done = new Promise<void>((ok) => {
      start();
      void c.run({
        eachBatch: async ({ batch }: { batch: { messages: { value: Buffer | null }[] } }) => {
          for (const m of batch.messages) if (JSON.parse(m.value!.toString('utf8')).seq >= 0) seen++;
          if (seen >= EVENTS) ok();
        },
      });
    });
    await done;
    await c.disconnect();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { cpuMicrosPerEvent: Math.round(((cpu.user + cpu.system) / EVENTS) * 10) / 10, eventsPerSec: Math.round(EVENTS / seconds), rssMb: Math.round(process.memoryUsage().rss / 1e6) };
}

export async function benchKafkaClients(): Promise<Record<string, unknown>> {
  confluent(); // fail before starting a broker when it is missing
  const kafka = await startLocalKafka({ dataDir: mkdtempSync(join(tmpdir(), 'vcam-bench-clients-')), partitions: PARTITIONS });
  const runs: Record<Lib, Record<Role, Side[]>> = { kafkajs: { produce: [], consume: [] }, confluent: { produce: [], consume: [] } };
  try {
    const admin = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    for (let r = 0; r < ROUNDS; r++) {
      for (const lib of ['kafkajs', 'confluent'] as const) {
        // Each client consumes what it produced: batches shaped by its own producer.
        const topic = `bench-${lib}-${r}`;
        await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
        for (const role of ['produce', 'consume'] as const) {
          const { stdout } = await execFileP(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), lib, role, kafka.bootstrap, topic], { env: process.env });
          runs[lib][role].push(JSON.parse(stdout) as Side);
        }
      }
    }
    await admin.disconnect();
  } finally {
    await kafka.stop();
  }
  const best = (xs: Side[]) => xs.reduce((a, b) => (b.cpuMicrosPerEvent < a.cpuMicrosPerEvent ? b : a));
  const summary = (role: Role) => {
    const [a, b] = [best(runs.kafkajs[role]), best(runs.confluent[role])];
    return { kafkajs: a, confluent: b, confluentCpuVsKafkajs: ratio(b.cpuMicrosPerEvent, a.cpuMicrosPerEvent) };
  };
  return {
    events: EVENTS,
    partitions: PARTITIONS,
    broker: `Apache Kafka ${kafka.version}, local`,
    what: 'CPU µs per event of the client process (all threads), best of the rounds; confluentCpuVsKafkajs < 1 means Confluent costs less',
    produce: { ...summary('produce'), how: `idempotent, gzip, acks=-1, ${PER_SEND}-message sends; kafkajs sendBatch with the bridge's partitioner, Confluent send() with linger.ms 50` },
    consume: { ...summary('consume'), how: 'eachBatch from the beginning, JSON.parse of every value; Confluent with js.consumer.max.batch.size -1' },
    rounds: runs,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [lib, role, bootstrap, topic] = process.argv.slice(2) as [Lib, Role, string, string];
  process.stdout.write(JSON.stringify(await side(lib, role, bootstrap, topic)));
  process.exit(0);
}
