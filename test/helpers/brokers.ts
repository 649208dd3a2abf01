/**
 * Real MQTT brokers on loopback for tests: aedes in-process and Debian's mosquitto as a
 * separate process, plus a mqtt.js subscriber that records what arrives.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import type { AgentBatch, PipelineEvent } from '../../common/contract.js';

export interface TestBroker {
  url: string;
  port: number;
  stop(): Promise<void>;
}

import { freePort } from '../../common/http.js';

export { freePort };

/** aedes on a TCP port; `port` lets a test bring a broker back on the same address. */
export async function startAedes(port = 0): Promise<TestBroker & { aedes: Aedes; server: Server }> {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    aedes,
    server,
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
    },
  };
}

/** Debian's mosquitto, a second and independent broker implementation. */
export async function startMosquitto(port?: number): Promise<TestBroker & { proc: ChildProcess }> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'vcam-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 100\nmax_queued_messages 100000\n`);
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 5_000;
  while (!(await canConnect(p))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`mosquitto did not start on port ${p} (is the Debian package mosquitto installed?): ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    port: p,
    url: `mqtt://127.0.0.1:${p}`,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Subscribes to every agent topic and keeps the events (in arrival order) and the raw batches. */
export async function collect(
  url: string,
  topic = 'vcam/v1/agents/+/events',
): Promise<{
  client: MqttClient;
  batches: AgentBatch[];
  events: PipelineEvent[];
  waitFor(pred: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  stop(): Promise<void>;
}> {
  const client = await mqtt.connectAsync(url, { clientId: `collector-${process.pid}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 200 });
  const batches: AgentBatch[] = [];
  const events: PipelineEvent[] = [];
  client.on('message', (_t, payload) => {
    const batch = JSON.parse(payload.toString()) as AgentBatch;
    batches.push(batch);
    events.push(...batch.events);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    client,
    batches,
    events,
    waitFor: (pred, timeoutMs = 15_000, what = 'condition') => waitFor(pred, timeoutMs, what),
    stop: () => client.endAsync(true),
  };
}

export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** JSON with object keys sorted: two reads of the same rows in another order (ClickHouse's GROUP BY has none) compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));
}

/** Waits until `read` returns the same value for `quietMs` (at most `timeoutMs`) and returns it: assert on it exactly. */
export async function whenQuiet<T>(read: () => T | Promise<T>, quietMs = 1_500, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`still changing after ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
    const now = await read();
    if (canonicalJson(now) !== canonicalJson(value)) [value, since] = [now, Date.now()];
  }
  return value;
}
