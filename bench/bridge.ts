/**
 * Bridge throughput: agents' batched payloads → `vcam bridge` (its own process) → the Kafka test
 * peer, counting an event only when its PUBACK arrived (that is, Kafka acked it). Baseline, same
 * run, same payloads and publishers: Debian's mosquitto forwarding them to one QoS 1 subscriber.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { addAgent } from '../bridge/agents.js';
import { agentTopic } from '../common/contract.js';
import { freePort, startMosquitto, waitFor } from '../test/helpers/brokers.js';
import { vcam, waitHealthy } from '../test/helpers/processes.js';
import { startLocalKafka } from '../kafka/index.js';
import { ratio, timed } from './measure.js';
import { readProc } from './procstat.js';

const AGENTS = 4;
const PAYLOADS_PER_AGENT = 100;
const EVENTS_PER_PAYLOAD = 500;
const WINDOW = 4;
const TOTAL = AGENTS * PAYLOADS_PER_AGENT * EVENTS_PER_PAYLOAD;

function payloads(agentId: string): Buffer[] {
  const now = Date.now();
  let seq = 0;
  return Array.from({ length: PAYLOADS_PER_AGENT }, () => {
    const events = Array.from({ length: EVENTS_PER_PAYLOAD }, () => {
      seq++;
      return { eventId: `cam-${seq % 97}#${agentId}-${seq}`, deviceId: `cam-${seq % 97}`, geoId: seq % 300, ts: now - 60_000 + seq, type: seq % 3 ? 'person' : 'vehicle', confidence: 0.8, agentId, seq, receivedAt: now };
    });
    return Buffer.from(JSON.stringify({ v: 1, agentId, events }));
  });
}

async function publishAll(clients: MqttClient[], ids: string[], data: Buffer[][]): Promise<void> {
  await Promise.all(
    clients.map(async (c, i) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (next < data[i]!.length) await c.publishAsync(agentTopic(ids[i]!), data[i]![next++]!, { qos: 1 });
        }),
      );
    }),
  );
}

export async function benchBridge(): Promise<Record<string, unknown>> {
  const ids = Array.from({ length: AGENTS }, (_, i) => `bench-${i}`);
  const data = ids.map(payloads);
  const bytes = data.flat().reduce((n, b) => n + b.length, 0);

  // Baseline: mosquitto → subscriber.
  const mosquitto = await startMosquitto();
  let baseline: number;
  try {
    const sub = await mqtt.connectAsync(mosquitto.url, { clientId: 'bench-sub' });
    let received = 0;
    sub.on('message', (_t, p) => (received += JSON.parse(p.toString()).events.length));
    await sub.subscribeAsync('vcam/v1/agents/+/events', { qos: 1 });
    const pubs = await Promise.all(ids.map((id) => mqtt.connectAsync(mosquitto.url, { clientId: id })));
    const { seconds } = await timed(async () => {
      await publishAll(pubs, ids, data);
      await waitFor(() => received >= TOTAL, 120_000, 'the subscriber to receive everything');
    });
    baseline = TOTAL / seconds;
    await Promise.all([...pubs, sub].map((c) => c.endAsync()));
  } finally {
    await mosquitto.stop();
  }

  // The bridge, as its own process, to the local Apache Kafka broker.
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-bridge-'));
  const kafka = await startLocalKafka({ dataDir: join(dir, 'kafka'), partitions: 16 });
  const agentsFile = join(dir, 'agents.json');
  const secrets: string[] = [];
  for (const id of ids) secrets.push(await addAgent(agentsFile, id));
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const bridge = vcam(
    ['bridge', '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), '--agents-file', agentsFile, '--kafka-brokers', kafka.bootstrap, '--log-level', 'warn'],
    {},
    process.env.VCAM_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.VCAM_BENCH_PROF}`] : [],
  );
  let throughput: number;
  let cpuUsPerEvent: number | undefined;
  try {
    await waitHealthy(httpPort, bridge);
    const pubs = await Promise.all(ids.map((id, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: id, username: id, password: secrets[i] })));
    const cpuBefore = readProc(bridge.child.pid!)?.cpuS;
    const { seconds } = await timed(() => publishAll(pubs, ids, data));
    const cpuAfter = readProc(bridge.child.pid!)?.cpuS;
    throughput = TOTAL / seconds;
    // CPU per event moves far less than events/s when other work shares the cores.
    if (cpuBefore !== undefined && cpuAfter !== undefined) cpuUsPerEvent = ((cpuAfter - cpuBefore) * 1e6) / TOTAL;
    await Promise.all(pubs.map((c) => c.endAsync()));
  } finally {
    bridge.child.kill('SIGTERM');
    await bridge.exited;
    await kafka.stop();
  }
  const r = Math.round;
  return {
    events: TOTAL,
    payloads: { count: AGENTS * PAYLOADS_PER_AGENT, eventsEach: EVENTS_PER_PAYLOAD, avgBytes: r(bytes / (AGENTS * PAYLOADS_PER_AGENT)) },
    publishers: AGENTS,
    windowPerPublisher: WINDOW,
    baseline: { name: 'Debian mosquitto forwarding the same payloads to one QoS 1 subscriber', eventsPerSec: r(baseline) },
    bridge: {
      what: 'vcam bridge process: auth, validate every event, idempotent Kafka sendBatch (gzip, acks=all) to the local Apache Kafka broker, PUBACK after the ack',
      eventsPerSec: r(throughput),
      vsMosquitto: ratio(throughput, baseline),
      cpuMicrosPerEvent: cpuUsPerEvent === undefined ? null : Math.round(cpuUsPerEvent * 10) / 10,
    },
  };
}
