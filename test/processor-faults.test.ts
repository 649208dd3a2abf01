/**
 * The processor under faults, with real parts: the embedded ClickHouse process stopped and
 * restarted, the geo table replaced while running, and a consumer group of several processors
 * with one killed mid-stream.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, waitFor, whenQuiet } from './helpers/brokers.js';
import { countPerGeoMinute, pipelineEvents, produceEvents, withDuplicates } from './helpers/events.js';
import { vcam, waitHealthy, type Proc } from './helpers/processes.js';
import type { LocalKafka } from '../kafka/index.js';
import { startTestKafka } from './helpers/kafka.js';

// One broker per test: each test's consumer group reads its topic from the beginning.
let kafka: LocalKafka;
beforeEach(async () => {
  kafka = await startTestKafka(16);
});
afterEach(() => kafka?.stop());

const procs: Proc[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.child.exitCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }
});

/** The server and every client here take the ClickHouse password from the environment, as an operator's service manager would give it. */
const CH_ENV = { VCAM_CLICKHOUSE_PASSWORD: randomBytes(18).toString('base64url') };

async function clickhouseProcess(dataDir: string, port: number): Promise<Proc> {
  const proc = vcam(['clickhouse', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn'], CH_ENV);
  procs.push(proc);
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`vcam clickhouse exited: ${proc.stderr()}`);
      return fetch(`http://127.0.0.1:${port}/ping`).then(
        (r) => r.ok,
        () => false,
      );
    },
    30_000,
    'vcam clickhouse',
  );
  return proc;
}

function processor(chUrl: string, group: string, port: number): Proc {
  const proc = vcam(['processor', '--kafka-brokers', kafka.bootstrap, '--clickhouse-url', chUrl, '--group', group, '--http-port', String(port), '--log-level', 'warn', '--hot-horizon', '2m', '--session-timeout', '3s'], CH_ENV);
  procs.push(proc);
  return proc;
}

/** An embedded ClickHouse process and one processor writing to it, healthy. */
async function clickhouseAndProcessor(group: string) {
  const dataDir = mkdtempSync(join(tmpdir(), `vcam-${group}-`));
  const chPort = await freePort();
  const url = `http://127.0.0.1:${chPort}`;
  const ch = await clickhouseProcess(dataDir, chPort);
  const httpPort = await freePort();
  await waitHealthy(httpPort, processor(url, group, httpPort));
  return { ch, dataDir, chPort, url, httpPort };
}

async function perGeoMinute(url: string, table = 'vcam.geo_type_1m'): Promise<Record<string, number>> {
  const client = createClient({ url, password: CH_ENV.VCAM_CLICKHOUSE_PASSWORD });
  try {
    const rows = await (await client.query({ query: `SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM ${table} GROUP BY geo_id, bucket`, format: 'JSONEachRow' })).json<{ geo_id: number; bucket: number; n: number }>();
    const out: Record<string, number> = {};
    for (const r of rows) out[`${r.geo_id}@${r.bucket}`] = Number(r.n);
    return out;
  } finally {
    await client.close();
  }
}

async function total(url: string): Promise<number> {
  const client = createClient({ url, password: CH_ENV.VCAM_CLICKHOUSE_PASSWORD });
  try {
    return Number((await (await client.query({ query: 'SELECT sum(events) AS n FROM vcam.geo_10s', format: 'JSONEachRow' })).json<{ n: number }>())[0]!.n);
  } catch {
    return -1;
  } finally {
    await client.close();
  }
}

describe('processor faults', () => {
  it('ClickHouse stopped for a while and restarted: consumption pauses, resumes, nothing lost or doubled, and the outage is alerted', { timeout: 150_000 }, async () => {
    const { ch: first, dataDir, chPort, url, httpPort } = await clickhouseAndProcessor('g-chdown');
    let ch = first;
    const unique = pipelineEvents(8_000, { prefix: 'c' });
    const stream = withDuplicates(unique);
    const half = Math.floor(stream.length / 2);
    await produceEvents(kafka.brokers, stream.slice(0, half), 400);
    await waitFor(async () => (await total(url)) > 500, 30_000, 'some events counted');
    ch.child.kill('SIGTERM');
    await ch.exited;
    // Events keep arriving in Kafka while ClickHouse is away.
    const producing = produceEvents(kafka.brokers, stream.slice(half), 400, 50);
    const failures = async () => (await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).match(/vcam_processor_clickhouse_write_failures_total\{component="processor"\} (\d+)/)?.[1];
    await waitFor(async () => Number(await failures()) > 0, 20_000, 'failed writes while ClickHouse is down');
    await new Promise((r) => setTimeout(r, 3_000));
    ch = await clickhouseProcess(dataDir, chPort);
    await producing;
    await waitFor(async () => (await total(url)) >= unique.length, 90_000, 'every event counted after ClickHouse returned');
    // Quiet first: a late double count must fail this, not land after the assertion.
    expect(await whenQuiet(() => total(url))).toBe(unique.length);
    expect(await perGeoMinute(url)).toEqual(countPerGeoMinute(unique));
    // The outage is on record: an alert opened while ClickHouse was away, resolved after.
    const client = createClient({ url, password: CH_ENV.VCAM_CLICKHOUSE_PASSWORD });
    await waitFor(
      async () => {
        const rows = await (await client.query({ query: "SELECT state FROM vcam.alerts FINAL WHERE kind = 'clickhouse_write_failing'", format: 'JSONEachRow' })).json<{ state: string }>();
        return rows.length === 1 && rows[0]!.state === 'resolved';
      },
      40_000,
      'the write-failure alert to be recorded and resolved',
    );
    await client.close();
  });

  it('Kafka unreachable for 60 s after a processor crash: the restarted processor retries, is unhealthy and alerts, and resumes exactly when the broker returns', { timeout: 240_000 }, async () => {
    const group = 'g-kafkadown';
    const { url, httpPort } = await clickhouseAndProcessor(group);
    const unique = pipelineEvents(6_000, { prefix: 'k' });
    const half = unique.length / 2;
    await produceEvents(kafka.brokers, unique.slice(0, half), 500);
    await waitFor(async () => (await total(url)) === half, 60_000, 'the first half counted');
    // The broker goes away, the processor crashes, and its supervisor starts it again.
    await kafka.kill();
    const downAt = Date.now();
    const [crashed] = procs.slice(-1);
    crashed!.child.kill('SIGKILL');
    await crashed!.exited;
    const restarted = processor(url, group, httpPort);
    const get = async (path: string) =>
      fetch(`http://127.0.0.1:${httpPort}${path}`).then(
        async (r) => ({ status: r.status, text: await r.text() }),
        () => ({ status: 0, text: '' }),
      );
    const restarts = async () => Number((await get('/metrics')).text.match(/vcam_processor_consumer_restarts_total\{consumer="events",component="processor"\} (\d+)/)?.[1] ?? 0);
    // Each start tries kafkajs' default 5 connection retries (about 20 s) before it counts as failed.
    await waitFor(async () => (await restarts()) >= 2, 90_000, 'the consumer restarted again and again');
    const health = await get('/healthz');
    expect(health.status).toBe(503);
    expect(JSON.parse(health.text)).toMatchObject({ ok: false, phase: 'joining the consumer group', error: expect.any(String) });
    expect((await get('/metrics')).text).toMatch(/vcam_processor_consumer_up\{consumer="events",component="processor"\} 0/);
    const client = createClient({ url, password: CH_ENV.VCAM_CLICKHOUSE_PASSWORD });
    const alertState = async () => (await (await client.query({ query: "SELECT state FROM vcam.alerts FINAL WHERE kind = 'consumer_down'", format: 'JSONEachRow' })).json<{ state: string }>()).map((r) => r.state);
    await waitFor(async () => (await alertState()).join() === 'open', 60_000, 'the consumer_down alert open');
    // Down for 60 s in all (at least), and the restarted processor still there, retrying.
    await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - downAt))));
    expect(restarted.child.exitCode).toBe(null);
    await kafka.start();
    await produceEvents(kafka.brokers, unique.slice(half), 500);
    await waitHealthy(httpPort, restarted, 90_000);
    await waitFor(async () => (await total(url)) >= unique.length, 90_000, 'every event counted after Kafka returned');
    expect(await whenQuiet(() => total(url))).toBe(unique.length);
    expect(await perGeoMinute(url)).toEqual(countPerGeoMinute(unique));
    await waitFor(async () => (await alertState()).join() === 'resolved', 60_000, 'the consumer_down alert resolved');
    await client.close();
  });

  it("ClickHouse down when partitions are first assigned: recovery fails, is counted as a failing write (the alert's signal), and resumes exactly", { timeout: 120_000 }, async () => {
    const { ch: first, dataDir, chPort, url, httpPort } = await clickhouseAndProcessor('g-chrecover');
    let ch = first;
    ch.child.kill('SIGTERM');
    await ch.exited;
    // No partition has been recovered yet: the first batches find ClickHouse gone.
    const unique = pipelineEvents(3_000, { prefix: 'r' });
    await produceEvents(kafka.brokers, unique, 500);
    const failures = async () => Number((await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).match(/vcam_processor_clickhouse_write_failures_total\{component="processor"\} (\d+)/)?.[1]);
    await waitFor(async () => (await failures()) >= 5, 30_000, 'failed recoveries counted while ClickHouse is down');
    ch = await clickhouseProcess(dataDir, chPort);
    await waitFor(async () => (await total(url)) >= unique.length, 60_000, 'every event counted after ClickHouse returned');
    expect(await whenQuiet(() => total(url))).toBe(unique.length);
    expect(await perGeoMinute(url)).toEqual(countPerGeoMinute(unique));
  });

  it('a processor restarted while ClickHouse is down: up for Prometheus at once, its start-up attempts counted as failing writes, not ready until ClickHouse returns, then exact', { timeout: 120_000 }, async () => {
    const { ch: first, dataDir, chPort, url, httpPort: firstPort } = await clickhouseAndProcessor('g-chstart');
    const old = procs.find((p) => p.child.spawnargs.includes(String(firstPort)))!;
    old.child.kill('SIGKILL');
    await old.exited;
    first.child.kill('SIGTERM');
    await first.exited;
    const httpPort = await freePort();
    const restarted = processor(url, 'g-chstart', httpPort);
    const failures = async () =>
      Number(
        (
          await fetch(`http://127.0.0.1:${httpPort}/metrics`).then(
            (r) => r.text(),
            () => '',
          )
        ).match(/vcam_processor_clickhouse_write_failures_total\{component="processor"\} (\d+)/)?.[1] ?? -1,
      );
    await waitFor(async () => (await failures()) >= 2, 30_000, 'failed start-up attempts on /metrics while ClickHouse is down');
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ ok: false, phase: 'waiting for ClickHouse' });
    const unique = pipelineEvents(2_000, { prefix: 's' });
    await produceEvents(kafka.brokers, unique, 500);
    await clickhouseProcess(dataDir, chPort);
    await waitHealthy(httpPort, restarted);
    await waitFor(async () => (await total(url)) >= unique.length, 60_000, 'every event counted after ClickHouse returned');
    expect(await whenQuiet(() => total(url))).toBe(unique.length);
  });

  it('a replaced geo table shows its new names without a restart; bad CSV lines are refused', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-chg-'));
    const chPort = await freePort();
    const url = `http://127.0.0.1:${chPort}`;
    await clickhouseProcess(dataDir, chPort);
    const csv = join(dataDir, 'geo.csv');
    writeFileSync(csv, 'geoId,geoName,region\n1,Old Town,north\n2,Harbour,south\n');
    const load = async () => {
      const proc = vcam(['geo', 'load', csv, '--clickhouse-url', url], CH_ENV);
      return { code: await proc.exited, stderr: proc.stderr() };
    };
    expect((await load()).code).toBe(0);
    const httpPort = await freePort();
    const p = processor(url, 'g-geo', httpPort);
    await waitHealthy(httpPort, p);
    const client = createClient({ url, password: CH_ENV.VCAM_CLICKHOUSE_PASSWORD });
    const nameOf = async (id: string) => (await (await client.query({ query: 'SELECT geo_name FROM vcam.events WHERE event_id = {id:String}', query_params: { id }, format: 'JSONEachRow' })).json<{ geo_name: string }>())[0]?.geo_name;
    const now = Date.now();
    const ev = (i: number) => ({ eventId: `cam-g:geo${i}`, deviceId: 'cam-g', geoId: 1, ts: now - 1000 + i, type: 'person', agentId: 'gw-1', seq: i, receivedAt: now });
    await produceEvents(kafka.brokers, [ev(1)]);
    await waitFor(async () => (await nameOf('cam-g:geo1')) !== undefined, 30_000, 'the first event');
    expect(await nameOf('cam-g:geo1')).toBe('Old Town');

    writeFileSync(csv, 'geoId,geoName,region\n1,New Town,north\n');
    expect((await load()).code).toBe(0);
    writeFileSync(join(dataDir, 'bad.csv'), 'geoId,geoName,region\nx,Nowhere,west\n3,,east\n');
    const bad = vcam(['geo', 'load', join(dataDir, 'bad.csv'), '--clickhouse-url', url], CH_ENV);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toMatch(/line 2: geoId "x"[\s\S]*line 3: geoName is empty/);
    await new Promise((r) => setTimeout(r, 6_000)); // the processor re-reads the table every 5 s
    await produceEvents(kafka.brokers, [ev(2)]);
    await waitFor(async () => (await nameOf('cam-g:geo2')) !== undefined, 30_000, 'the second event');
    expect(await nameOf('cam-g:geo2')).toBe('New Town');
    await client.close();
  });

  it.each([2, 3])('%i processors in one group, one killed mid-stream: partitions move, counts exact', async (n) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-chm-'));
    const chPort = await freePort();
    const url = `http://127.0.0.1:${chPort}`;
    await clickhouseProcess(dataDir, chPort);
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
    // Members join one after another, each join settled before the next: fewer rebalances while the test starts.
    const members: Proc[] = [];
    for (const port of ports) {
      const p = processor(url, 'g-multi', port);
      await waitHealthy(port, p);
      members.push(p);
      await new Promise((r) => setTimeout(r, 4_000));
    }
    const unique = pipelineEvents(12_000, { prefix: `m${n}` });
    const producing = produceEvents(kafka.brokers, withDuplicates(unique), 400, 60);
    await waitFor(async () => (await total(url)) > 2_000, 60_000, 'counting under way');
    const assigned = await Promise.all(ports.map(async (port) => ((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { partitions: number[] }).partitions.length));
    expect(assigned.filter((n) => n > 0).length, `partitions per member: ${assigned.join(', ')}; ${members.map((m) => m.stderr().slice(-500)).join('\n')}`).toBeGreaterThanOrEqual(2);
    members[n - 1]!.child.kill('SIGKILL');
    await members[n - 1]!.exited;
    await producing;
    await waitFor(async () => (await total(url)) >= unique.length, 90_000, 'every event counted by the survivors');
    expect(await whenQuiet(() => perGeoMinute(url))).toEqual(countPerGeoMinute(unique));
  });
});
