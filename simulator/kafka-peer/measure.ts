/**
 * Measures kafkajs 2.2.4 against the Kafka test peer (librdkafka 2.0.2 mock
 * cluster) and prints the numbers quoted in docs/testing.md.
 *
 *   node --import tsx simulator/kafka-peer/measure.ts [section...]
 *
 * Sections: produce consume retention idempotent group outage gzip (default: all).
 * Results are printed as they come and as one JSON object at the end.
 * Takes about 2 minutes; the outage section alone waits ~35 s by design.
 */
import { performance } from 'node:perf_hooks';
import {
  CompressionTypes,
  Kafka,
  logLevel,
  type Consumer,
  type KafkaConfig,
  type LogEntry,
  type Message,
} from 'kafkajs';
import { startKafkaPeer, type KafkaPeer } from './index.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const results: Record<string, unknown> = {};
const record = (key: string, value: unknown) => {
  results[key] = value;
  console.log(`${key}: ${JSON.stringify(value)}`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 0) => Number(n.toFixed(d));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

interface Captured {
  at: number;
  level: string;
  namespace: string;
  message: string;
  error?: string;
  extra?: string;
}

/** A kafkajs client whose log lines are captured instead of printed. */
function client(peer: KafkaPeer, clientId: string, extra: Partial<KafkaConfig> = {}, level = logLevel.ERROR) {
  const logs: Captured[] = [];
  const kafka = new Kafka({
    clientId,
    brokers: peer.brokers,
    logLevel: level,
    logCreator:
      () =>
      ({ namespace, label, log }: LogEntry) => {
        const { message, error, timestamp: _t, logger: _l, stack: _s, ...rest } = log as Record<string, unknown>;
        logs.push({
          at: performance.now(),
          level: label,
          namespace,
          message: String(message),
          error: error === undefined ? undefined : String(error),
          extra: Object.keys(rest).length ? JSON.stringify(rest) : undefined,
        });
      },
    ...extra,
  });
  return { kafka, logs };
}

/** ~250-byte JSON camera event, with a random id so gzip is not unrealistically good. */
let evtSeq = 0;
function event(): Message {
  const i = evtSeq++;
  const camera = `cam-${String(i % 64).padStart(3, '0')}`;
  const value = JSON.stringify({
    v: 1,
    id: `${Math.random().toString(16).slice(2, 14)}${i.toString(16).padStart(8, '0')}`,
    cameraId: camera,
    siteId: `site-${i % 7}`,
    ts: 1_700_000_000_000 + i * 37,
    kind: ['motion', 'person', 'vehicle', 'tamper'][i % 4],
    score: round(Math.random(), 4),
    bbox: [i % 640, i % 480, 32 + (i % 100), 48 + (i % 90)],
    frame: i,
    fw: '3.2.1',
    model: 'yolov8n-int8',
    zone: `entrance-${['north', 'south', 'east', 'west'][i % 4]}`,
    tags: ['zone-a', i % 2 ? 'night' : 'day'],
  });
  return { key: camera, value };
}
const batch = (n: number) => Array.from({ length: n }, event);
const bytesOf = (ms: Message[]) =>
  ms.reduce((n, m) => n + Buffer.byteLength(m.value as string) + Buffer.byteLength((m.key as string) ?? ''), 0);

async function withPeer<T>(opts: Parameters<typeof startKafkaPeer>[0], fn: (p: KafkaPeer) => Promise<T>): Promise<T> {
  const peer = await startKafkaPeer(opts);
  try {
    return await fn(peer);
  } finally {
    await peer.stop();
  }
}

async function topicCounts(kafka: Kafka, topic: string) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offs = await admin.fetchTopicOffsets(topic);
    return {
      low: offs.reduce((n, o) => n + Number(o.low), 0),
      high: offs.reduce((n, o) => n + Number(o.high), 0),
    };
  } finally {
    await admin.disconnect();
  }
}

/** Consume `expected` messages with a fresh group; returns timings. */
async function consumeAll(
  kafka: Kafka,
  topic: string,
  expected: number,
  mode: 'eachMessage' | 'eachBatch',
  maxWaitTimeInMs = 100,
) {
  const consumer = kafka.consumer({
    groupId: `measure-${mode}-${Date.now()}`,
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const tRun = performance.now();
  let tFirst = 0;
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    const done = () => n >= expected && resolve();
    const run =
      mode === 'eachMessage'
        ? consumer.run({
            eachMessage: async () => {
              if (n++ === 0) tFirst = performance.now();
              done();
            },
          })
        : consumer.run({
            eachBatchAutoResolve: true,
            eachBatch: async ({ batch: b }) => {
              if (n === 0) tFirst = performance.now();
              n += b.messages.length;
              done();
            },
          });
    run.catch(reject);
    setTimeout(() => reject(new Error(`consume timeout after ${n}/${expected}`)), 120_000).unref();
  });
  const tLast = performance.now();
  await consumer.disconnect();
  return {
    messages: n,
    joinToFirstMs: round(tFirst - tRun),
    msgPerSec: round(n / ((tLast - tFirst) / 1000)),
  };
}

// ---------------------------------------------------------------------------
// (a) produce throughput, (b) consume throughput + empty fetch hold
// ---------------------------------------------------------------------------
async function produceAndConsume() {
  // Separate topics per run keep every partition well under the mock's
  // per-partition retention (see retention()).
  const tputTopics = ['m.tput.0', 'm.tput.1', 'm.tput.2', 'm.tput.4inflight', 'm.tput.small'];
  await withPeer({ topics: [...tputTopics, 'm.tput.gz', 'm.empty'], partitions: 16 }, async (peer) => {
    const { kafka } = client(peer, 'measure-tput');
    const producer = kafka.producer();
    await producer.connect();
    const perSend = 1_000;
    const sends = 100;
    const payloads = Array.from({ length: sends }, () => batch(perSend));
    record('payload.avgValueBytes', round(bytesOf(payloads[0]!) / perSend));

    // warm-up (metadata, connections)
    await producer.send({ topic: 'm.tput.small', acks: -1, messages: batch(10) });

    const runs: number[] = [];
    const nodeCpu: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (const messages of payloads) await producer.send({ topic: `m.tput.${rep}`, acks: -1, messages });
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      runs.push(round((sends * perSend) / (wall / 1000)));
      nodeCpu.push(round(((cpu.user + cpu.system) / 1000 / wall) * 100));
    }
    record('a.produce.msgPerSec.sequential1000PerSend.acksAll', runs);
    record('a.produce.nodeCpuPercentOfOneCore', nodeCpu);

    {
      const t0 = performance.now();
      const inFlight = 4;
      for (let i = 0; i < payloads.length; i += inFlight)
        await Promise.all(
          payloads.slice(i, i + inFlight).map((messages) => producer.send({ topic: 'm.tput.4inflight', acks: -1, messages })),
        );
      record('a.produce.msgPerSec.4inFlight1000PerSend.acksAll', round((sends * perSend) / ((performance.now() - t0) / 1000)));
    }
    {
      const t0 = performance.now();
      for (const messages of payloads)
        await producer.send({ topic: 'm.tput.gz', acks: -1, compression: CompressionTypes.GZIP, messages });
      record('a.produce.msgPerSec.gzip.sequential1000PerSend', round((sends * perSend) / ((performance.now() - t0) / 1000)));
    }
    {
      const small = batch(10_000);
      const t0 = performance.now();
      for (let i = 0; i < small.length; i += 10)
        await producer.send({ topic: 'm.tput.small', acks: -1, messages: small.slice(i, i + 10) });
      record('a.produce.msgPerSec.sequential10PerSend', round(small.length / ((performance.now() - t0) / 1000)));
    }
    await producer.disconnect();

    const { low, high } = await topicCounts(kafka, 'm.tput.0');
    record('b.topicMessages', { low, high });
    record('b.consume.eachMessage', await consumeAll(kafka, 'm.tput.0', high - low, 'eachMessage'));
    record('b.consume.eachBatch', await consumeAll(kafka, 'm.tput.1', sends * perSend, 'eachBatch'));
    record('b.consume.eachBatch.gzip', await consumeAll(kafka, 'm.tput.gz', sends * perSend, 'eachBatch'));

    // Empty fetch: how long does the mock hold a Fetch with no data?
    for (const maxWait of [100, 1_000]) {
      const consumer = kafka.consumer({
        groupId: `measure-empty-${maxWait}`,
        sessionTimeout: 6_000,
        heartbeatInterval: 500,
        maxWaitTimeInMs: maxWait,
      });
      const durations: number[] = [];
      let joined = false;
      consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
      consumer.on(consumer.events.REQUEST, ({ payload }) => {
        if (joined && payload.apiName === 'Fetch') durations.push(payload.duration);
      });
      await consumer.connect();
      await consumer.subscribe({ topic: 'm.empty', fromBeginning: true });
      await consumer.run({ eachMessage: async () => {} });
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000 && (!joined || durations.length < 8)) await sleep(100);
      await sleep(maxWait * 3);
      await consumer.disconnect();
      record(`b.emptyFetch.maxWait${maxWait}.durationMs`, {
        fetches: durations.length,
        median: median(durations),
        min: Math.min(...durations),
        max: Math.max(...durations),
      });
    }
  });
}

// ---------------------------------------------------------------------------
// (c) per-partition retention and lagging consumers; gzip capacity
// ---------------------------------------------------------------------------
async function retention(compression: CompressionTypes, perSend: number, label: string) {
  return withPeer({ topics: ['m.ret'], partitions: 1 }, async (peer) => {
    const { kafka } = client(peer, 'measure-ret');
    const producer = kafka.producer();
    await producer.connect();
    let produced = 0;
    let producedBytes = 0;
    let firstPrune: { producedMessages: number; producedMiB: number; retained: number } | undefined;
    let retained = 0;
    const admin = kafka.admin();
    await admin.connect();
    const checkEvery = Math.max(5, Math.ceil(5_000 / perSend));
    for (let i = 0; produced < 1_000_000; i++) {
      const messages = batch(perSend);
      await producer.send({ topic: 'm.ret', acks: -1, compression, messages });
      produced += messages.length;
      producedBytes += bytesOf(messages);
      if (i % checkEvery === checkEvery - 1 || firstPrune) {
        const [o] = await admin.fetchTopicOffsets('m.ret');
        retained = Number(o!.high) - Number(o!.low);
        if (Number(o!.low) > 0 && !firstPrune) {
          firstPrune = { producedMessages: produced, producedMiB: round(producedBytes / 2 ** 20, 2), retained };
        } else if (firstPrune && produced >= firstPrune.producedMessages * 1.5) break;
      }
    }
    await admin.disconnect();
    await producer.disconnect();
    const r = { perSend, firstPrune, steadyStateRetained: retained };
    record(`c.retention.${label}`, r);
    return r;
  });
}

async function laggingConsumer() {
  await withPeer({ topics: ['m.lag'], partitions: 1 }, async (peer) => {
    const { kafka, logs } = client(peer, 'measure-lag', {}, logLevel.WARN);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'm.lag', acks: -1, messages: batch(1_000) });

    const groupId = 'measure-lag';
    const mk = () =>
      kafka.consumer({ groupId, sessionTimeout: 6_000, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
    let c: Consumer = mk();
    await c.connect();
    await c.subscribe({ topic: 'm.lag', fromBeginning: true });
    let seen = 0;
    await new Promise<void>((resolve) => {
      void c.run({
        autoCommitInterval: 100,
        eachMessage: async () => {
          if (++seen >= 1_000) resolve();
        },
      });
    });
    await sleep(300);
    await c.disconnect(); // commits 1000

    // The consumer is "lagging": push ~10 MiB past it.
    for (let i = 0; i < 40; i++) await producer.send({ topic: 'm.lag', acks: -1, messages: batch(1_000) });
    const { low, high } = await topicCounts(kafka, 'm.lag');
    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId, topics: ['m.lag'] });
    await admin.disconnect();

    logs.length = 0;
    c = mk();
    await c.connect();
    await c.subscribe({ topic: 'm.lag', fromBeginning: true });
    const firstOffset = await new Promise<string>((resolve) => {
      void c.run({ eachMessage: async ({ message }) => resolve(message.offset) });
    });
    await c.disconnect();
    await producer.disconnect();
    record('c.laggingConsumer', {
      committedOffset: committed[0]!.partitions[0]!.offset,
      logStartOffset: low,
      highWatermark: high,
      resumedAtOffset: firstOffset,
      lostMessages: Number(firstOffset) - Number(committed[0]!.partitions[0]!.offset),
      kafkajsLogs: logs.filter((l) => /offset|range/i.test(l.message + (l.error ?? ''))).slice(0, 3),
    });
  });
}

async function gzipRoundTrip() {
  await withPeer({ topics: ['m.gz'], partitions: 4 }, async (peer) => {
    const { kafka } = client(peer, 'measure-gz');
    const producer = kafka.producer();
    await producer.connect();
    const sent = batch(500);
    await producer.send({ topic: 'm.gz', acks: -1, compression: CompressionTypes.GZIP, messages: sent });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: 'measure-gz', sessionTimeout: 6_000, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'm.gz', fromBeginning: true });
    const got = new Set<string>();
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.add(message.value!.toString());
          if (got.size >= sent.length) resolve();
        },
      });
      setTimeout(resolve, 20_000).unref();
    });
    await consumer.disconnect();
    const allMatch = sent.every((m) => got.has(m.value as string));
    record('gzip.roundTrip', { sent: sent.length, received: got.size, allMatch });
  });
}

// ---------------------------------------------------------------------------
// (d) controller id 0: idempotent producer, createTopics, auto-creation
// ---------------------------------------------------------------------------
async function idempotentAndAdmin() {
  await withPeer({ topics: ['m.idem'], partitions: 4 }, async (peer) => {
    const { kafka, logs } = client(peer, 'measure-idem');
    const admin = kafka.admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    record('d.describeCluster', { controller: cluster.controller, brokers: cluster.brokers.map((b) => b.nodeId) });

    const timed = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      try {
        const v = await fn();
        return { ok: true, value: v, ms: round(performance.now() - t0) };
      } catch (e) {
        const err = e as Error & { retriable?: boolean; originalError?: Error };
        return {
          ok: false,
          ms: round(performance.now() - t0),
          error: `${err.name}: ${err.message}`,
          original: err.originalError ? `${err.originalError.name}: ${err.originalError.message}` : undefined,
        };
      }
    };

    record(
      'd.createTopics',
      await timed(() => admin.createTopics({ topics: [{ topic: 'm.created', numPartitions: 3 }], waitForLeaders: true })),
    );
    await admin.disconnect();

    const idem = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    record(
      'd.idempotentProducer',
      await timed(async () => {
        await idem.connect();
        return idem.send({ topic: 'm.idem', acks: -1, messages: [{ value: 'x' }] });
      }),
    );
    await idem.disconnect().catch(() => {});
    record(
      'd.kafkajsLogs',
      [...new Set(logs.map((l) => `${l.level} [${l.namespace}] ${l.message}${l.error ? ` (${l.error})` : ''}`))].slice(0, 6),
    );

    // Topic auto-creation by Metadata (producer allowAutoTopicCreation defaults to true).
    const { kafka: k2 } = client(peer, 'measure-auto');
    const p = k2.producer();
    await p.connect();
    const auto = await timed(() => p.send({ topic: 'm.auto', acks: -1, messages: [{ value: 'x' }] }));
    await p.disconnect();
    const a2 = k2.admin();
    await a2.connect();
    const meta = await a2.fetchTopicMetadata({ topics: ['m.auto'] }).catch((e: Error) => e.message);
    await a2.disconnect();
    record('d.autoCreate', {
      send: auto.ok ? 'ok' : auto.error,
      partitions: typeof meta === 'string' ? meta : meta.topics[0]!.partitions.length,
    });
  });
}

// ---------------------------------------------------------------------------
// (e) two consumers in one group
// ---------------------------------------------------------------------------
async function groupTrial(consumers: number, staggered: boolean, sessionTimeout: number, trial: number) {
  return withPeer({ topics: ['m.group'], partitions: 16 }, async (peer) => {
    const { kafka, logs } = client(peer, `measure-group-${trial}`);
    const groupId = `measure-group-${trial}`;
    const assigned = new Map<string, number>();
    const crashes: string[] = [];
    const names = ['A', 'B', 'C'].slice(0, consumers);
    const mk = (name: string) => {
      const c = kafka.consumer({ groupId, sessionTimeout, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
      c.on(c.events.GROUP_JOIN, ({ payload }) => {
        assigned.set(name, Object.values(payload.memberAssignment).reduce((n, ps) => n + ps.length, 0));
      });
      c.on(c.events.CRASH, ({ payload }) => {
        assigned.delete(name);
        const type = (payload.error as Error & { type?: string }).type;
        crashes.push(`${name}: ${payload.error.name}${type ? ` ${type}` : ''} (restart=${payload.restart})`);
      });
      return c;
    };
    const cs = names.map(mk);
    const start = async (c: Consumer) => {
      await c.connect();
      await c.subscribe({ topic: 'm.group', fromBeginning: true });
      await c.run({ eachMessage: async () => {} });
    };
    const balanced = () =>
      names.every((n) => assigned.has(n)) && [...assigned.values()].reduce((x, y) => x + y, 0) === 16;
    const t0 = performance.now();
    let firstJoinMs: number | undefined;
    if (staggered) {
      await start(cs[0]!); // run() resolves after the first join+sync
      firstJoinMs = round(performance.now() - t0);
    }
    const tNext = performance.now();
    await Promise.all(cs.slice(staggered ? 1 : 0).map(start)).catch((e: Error) => crashes.push(`start: ${e.message}`));
    while (!balanced() && performance.now() - tNext < 15_000 && crashes.length === 0) await sleep(50);
    const res = {
      consumers,
      staggered,
      sessionTimeout,
      firstJoinMs,
      balanced: balanced(),
      msToBalanced: balanced() ? round(performance.now() - tNext) : undefined,
      assignment: Object.fromEntries(assigned),
      crashes,
      syncGroupErrors: [
        ...new Set(
          logs
            .filter((l) => /SyncGroup/.test(l.message))
            .map((l) => `${l.message}: ${l.error ?? ''}`.slice(0, 160)),
        ),
      ],
    };
    await Promise.all(cs.map((c) => c.disconnect().catch(() => {})));
    return res;
  });
}

async function twoConsumers() {
  const trials: Awaited<ReturnType<typeof groupTrial>>[] = [];
  let n = 0;
  for (let i = 0; i < 3; i++) trials.push(await groupTrial(2, true, 6_000, n++));
  trials.push(await groupTrial(2, true, 3_000, n++));
  for (let i = 0; i < 5; i++) trials.push(await groupTrial(2, false, 6_000, n++));
  for (let i = 0; i < 5; i++) trials.push(await groupTrial(3, false, 6_000, n++));
  for (const t of trials) console.log(`  ${JSON.stringify(t)}`);
  const summary: Record<string, { trials: number; withSyncGroupInvalidRequest: number; msToBalanced: number[] }> = {};
  for (const t of trials) {
    const k = `${t.consumers}consumers.${t.staggered ? 'staggered' : 'simultaneous'}.session${t.sessionTimeout}`;
    summary[k] ??= { trials: 0, withSyncGroupInvalidRequest: 0, msToBalanced: [] };
    summary[k].trials++;
    if (t.syncGroupErrors.length) summary[k].withSyncGroupInvalidRequest++;
    if (t.msToBalanced !== undefined) summary[k].msToBalanced.push(t.msToBalanced);
  }
  record('e.groupJoin.summary', summary);
  record(
    'e.groupJoin.exampleErrors',
    [...new Set(trials.flatMap((t) => [...t.syncGroupErrors, ...t.crashes]))].slice(0, 4),
  );
}

// ---------------------------------------------------------------------------
// (f) broker outages vs. kafkajs retries
// ---------------------------------------------------------------------------
async function outage(downForMs: number, label: string, extra: Partial<KafkaConfig> = {}) {
  return withPeer({ topics: ['m.out'], partitions: 4 }, async (peer) => {
    const { kafka, logs } = client(peer, `measure-out-${label}`, extra);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'm.out', acks: -1, messages: [{ value: 'warm' }] });
    await peer.down(1);
    const t0 = performance.now();
    const upTimer = setTimeout(() => void peer.up(1), downForMs);
    const res = await producer.send({ topic: 'm.out', acks: -1, messages: [{ value: 'x' }] }).then(
      () => ({ ok: true as const, ms: round(performance.now() - t0) }),
      (e: Error) => ({ ok: false as const, ms: round(performance.now() - t0), error: `${e.name}: ${e.message}` }),
    );
    const failures = logs.filter((l) => l.at >= t0 && /Failed to connect/.test(l.message));
    const connectRetries = failures.length;
    const retryTimeline = failures.map((l) => `${round(l.at - t0)}ms ${l.namespace}: ${l.message.slice(0, 40)}`);
    clearTimeout(upTimer);
    await peer.up(1);
    await producer.disconnect();
    const r = { downForMs, ...res, connectRetriesLogged: connectRetries, retryTimeline };
    record(`f.outage.${label}`, r);
    return r;
  });
}

async function rttCheck() {
  await withPeer({ topics: ['m.rtt'], partitions: 1 }, async (peer) => {
    const { kafka } = client(peer, 'measure-rtt');
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'm.rtt', acks: -1, messages: [{ value: 'w' }] });
    const t = async () => {
      const t0 = performance.now();
      await producer.send({ topic: 'm.rtt', acks: -1, messages: [{ value: 'x' }] });
      return round(performance.now() - t0);
    };
    const before = await t();
    await peer.rtt(1, 200);
    const during = await t();
    await peer.rtt(1, 0);
    await producer.disconnect();
    record('rtt.produceMs', { before, withRtt200: during });
  });
}

const sections: Record<string, () => Promise<unknown>> = {
  produce: produceAndConsume,
  consume: async () => {}, // measured together with produce
  retention: async () => {
    await retention(CompressionTypes.None, 1_000, 'none.1000PerSend');
    await retention(CompressionTypes.GZIP, 1_000, 'gzip.1000PerSend');
    await retention(CompressionTypes.GZIP, 100, 'gzip.100PerSend');
    await retention(CompressionTypes.GZIP, 10, 'gzip.10PerSend');
    await laggingConsumer();
  },
  gzip: gzipRoundTrip,
  idempotent: idempotentAndAdmin,
  group: twoConsumers,
  outage: async () => {
    await outage(3_000, 'down3s.defaultRetry');
    await outage(15_000, 'down15s.defaultRetry');
    await outage(15_000, 'down15s.retry10max3s', {
      retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 3_000 },
    });
    await outage(60_000, 'shortBudget.retries1.connTimeout500', {
      retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 },
      connectionTimeout: 500,
    });
    await rttCheck();
  },
};

// kafkajs picks its retry defaults at load time from NODE_ENV: under vitest
// (NODE_ENV=test) they are 50 ms initial, x1.5, max 1 s, 15 retries instead of
// 300 ms, x2, max 30 s, 5 retries. Run with NODE_ENV=test to see test numbers.
record('env', { nodeEnv: process.env.NODE_ENV ?? null, cpus: (await import('node:os')).cpus().length });

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(sections);
const tAll = performance.now();
for (const name of wanted) {
  const fn = sections[name];
  if (!fn) throw new Error(`unknown section ${name}; known: ${Object.keys(sections).join(' ')}`);
  console.log(`== ${name}`);
  await fn();
}
record('totalSeconds', round((performance.now() - tAll) / 1000, 1));
console.log(JSON.stringify(results, null, 2));
