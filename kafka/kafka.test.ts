/**
 * The local Apache Kafka broker: a real broker (admin-created topics, idempotent producer,
 * time-based retention, loopback only, its log kept across kill -9), `vcam kafka`'s errors when
 * something is missing, and deploy/compose.yaml running the same release with the same settings.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { PACKAGE_ROOT } from '../common/paths.js';
import { consumeAll, startTestKafka } from '../test/helpers/kafka.js';
import { vcam } from '../test/helpers/processes.js';
import { KAFKA_VERSION, type LocalKafka } from './index.js';

let kafka: LocalKafka;
beforeAll(async () => {
  kafka = await startTestKafka(4);
}, 120_000);
afterAll(() => kafka?.stop());

const client = () => new Kafka({ clientId: 'kafka-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1_000 } });

describe('local Apache Kafka', () => {
  it(`is Apache Kafka ${KAFKA_VERSION} on 127.0.0.1 only, with vcam's topics created and retention by time alone`, async () => {
    expect(kafka.version).toBe(KAFKA_VERSION);
    const props = readFileSync(join(kafka.dataDir, 'server.properties'), 'utf8');
    const listeners = /^listeners=(.*)$/m.exec(props)![1]!.split(',');
    expect(listeners.map((l) => l.replace(/^\w+:\/\/(.*):\d+$/, '$1'))).toEqual(['127.0.0.1', '127.0.0.1']);
    const admin = client().admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [TOPICS.events, TOPICS.dlq] });
      expect(Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]))).toEqual({ [TOPICS.events]: 4, [TOPICS.dlq]: 4 });
      const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPICS.events, configNames: ['retention.ms', 'retention.bytes'] }] });
      const config = Object.fromEntries(resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
      expect(config).toEqual({ 'retention.ms': String(7 * 86_400_000), 'retention.bytes': '-1' });
    } finally {
      await admin.disconnect();
    }
  });

  it('takes an idempotent producer, and after kill -9 and a restart still holds every acknowledged message exactly once', async () => {
    const producer = client().producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 50 }, (_, j) => `m-${i}-${j}`);
      await producer.send({ topic: TOPICS.events, acks: -1, messages: batch.map((v) => ({ key: v.slice(-1), value: v })) });
      sent.push(...batch);
    }
    await producer.disconnect();
    const pid = kafka.pid;
    await kafka.kill();
    await kafka.start();
    expect(kafka.pid).not.toBe(pid);
    const c = await consumeAll(kafka.brokers, [TOPICS.events]);
    try {
      await c.waitFor(() => c.messages.length >= sent.length, 60_000, 'every message back');
      // Quiet for a while, then exactly what was acknowledged, each once.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(c.messages.map((m) => m.value.toString()).sort()).toEqual([...sent].sort());
    } finally {
      await c.stop();
    }
  });
});

describe('vcam kafka', () => {
  it('exits 69 naming the one command that fetches the jars when they are missing', async () => {
    const p = vcam(['kafka', '--data-dir', join(kafka.dataDir, 'unused')], { VCAM_KAFKA_HOME: '/nonexistent/vcam-kafka' });
    expect(await p.exited).toBe(69);
    expect(p.stderr()).toMatch(/Apache Kafka \S+ is not fetched.*run `vcam kafka fetch`/);
  });

  it('exits 69 saying how to install Java when there is none', async () => {
    const p = vcam(['kafka', '--data-dir', join(kafka.dataDir, 'unused')], { PATH: '/nonexistent' });
    expect(await p.exited).toBe(69);
    expect(p.stderr()).toMatch(/java is not on PATH: install a Java 17\+ runtime/);
  });

  it('--help names the release and every option', async () => {
    const p = vcam(['kafka', '--help']);
    let out = '';
    p.child.stdout!.on('data', (d) => (out += d));
    expect(await p.exited).toBe(0);
    for (const s of [KAFKA_VERSION, '--data-dir', '--port', '--partitions', '--heap', 'vcam kafka fetch']) expect(out).toContain(s);
  });
});

describe('deploy/compose.yaml', () => {
  it('runs the same Kafka release with every setting of kafka/broker.properties', () => {
    const compose = readFileSync(join(PACKAGE_ROOT, 'deploy', 'compose.yaml'), 'utf8');
    expect([...compose.matchAll(/image: apache\/kafka:(\S+)/g)].map((m) => m[1])).toEqual([KAFKA_VERSION, KAFKA_VERSION]);
    const props = readFileSync(join(PACKAGE_ROOT, 'kafka', 'broker.properties'), 'utf8');
    const settings = [...props.matchAll(/^([a-z.]+)=(.*)$/gm)];
    expect(settings.length).toBeGreaterThan(10);
    for (const [, key, value] of settings) {
      const env = `KAFKA_${key!.toUpperCase().replace(/\./g, '_')}`;
      const m = new RegExp(`^\\s+${env}: "?([^"\\n]*)"?$`, 'm').exec(compose);
      expect(m?.[1], env).toBe(value);
    }
  });
});
