/**
 * The bridge and agent as real processes, wired by their CLIs: `vcam bridge add-agent`,
 * `vcam bridge --kafka-brokers …`, `vcam agent …`; then SIGTERM drains and exits 0.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../common/kafka.js';
import { freePort } from './helpers/brokers.js';
import { consumeAll, startTestKafka } from './helpers/kafka.js';
import { VCAM_BIN, vcam, waitHealthy } from './helpers/processes.js';
import type { LocalKafka } from '../kafka/index.js';

let kafka: LocalKafka;
beforeAll(async () => {
  kafka = await startTestKafka(16);
});
afterAll(() => kafka?.stop());

describe('vcam bridge + vcam agent processes', () => {
  it('carry events from HTTP ingest to Kafka, and both shut down cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vcam-cli-'));
    const agentsFile = join(dir, 'agents.json');
    const secret = execFileSync(process.execPath, [VCAM_BIN, 'bridge', 'add-agent', 'gw-cli', '--agents-file', agentsFile], { env: { ...process.env, VCAM_FROM_SOURCE: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);

    const [mqttPort, bridgeHttp, agentHttp] = [await freePort(), await freePort(), await freePort()];
    const bridge = vcam(['bridge', '--mqtt-port', String(mqttPort), '--http-port', String(bridgeHttp), '--agents-file', agentsFile, '--log-level', 'warn'], {
      VCAM_KAFKA_BROKERS: kafka.bootstrap,
      VCAM_KAFKA_IDEMPOTENT: 'false',
    });
    await waitHealthy(bridgeHttp, bridge);
    const agent = vcam(['agent', '--id', 'gw-cli', '--data-dir', join(dir, 'agent'), '--http-port', String(agentHttp), '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--mqtt-username', 'gw-cli', '--log-level', 'warn'], {
      VCAM_MQTT_PASSWORD: secret,
    });
    await waitHealthy(agentHttp, agent);
    const consumer = await consumeAll(kafka.brokers, [TOPICS.events]);

    const body = Array.from({ length: 300 }, (_, i) => ({ deviceId: `cam-${i % 3}`, geoId: 5, ts: Date.now() - 1000 - i, type: 'person' }));
    const r = await fetch(`http://127.0.0.1:${agentHttp}/v1/events`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(202);
    const ids = ((await r.json()) as { eventIds: string[] }).eventIds;
    await consumer
      .waitFor(() => consumer.events(TOPICS.events).filter((m) => m.event.agentId === 'gw-cli').length >= 300, 30_000, '300 events in Kafka')
      .catch(async (err: Error) => {
        // Say where the events stopped: the agent's backlog and connection, the bridge's forwards.
        const lines = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n').filter((l) => /^vcam_(agent_(backlog|connected|publish)|bridge_(events|forward|connected|inflight))/.test(l));
        throw new Error(`${err.message}; ${consumer.events(TOPICS.events).length} in Kafka; agent: ${(await lines(agentHttp)).join(', ')}; bridge: ${(await lines(bridgeHttp)).join(', ')}; stderr: ${agent.stderr()} ${bridge.stderr()}`);
      });
    expect(new Set(consumer.events(TOPICS.events).map((m) => m.event.eventId))).toEqual(new Set(ids));

    const metrics = await (await fetch(`http://127.0.0.1:${bridgeHttp}/metrics`)).text();
    expect(metrics).toMatch(/vcam_bridge_events_forwarded_total\{downstream="kafka",component="bridge"\} 300/);
    expect(metrics).toMatch(/vcam_bridge_connected_agents\{component="bridge"\} 1/);
    expect(metrics).toContain('vcam_process_resident_memory_bytes');

    agent.child.kill('SIGTERM');
    bridge.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(await bridge.exited).toBe(0);
    await consumer.stop();
  });

  it('explains what is wrong with its flags and exits 2', () => {
    const run = (args: string[]) => {
      try {
        execFileSync(process.execPath, [VCAM_BIN, ...args], { env: { ...process.env, VCAM_FROM_SOURCE: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { status: number; stderr: string };
        return { code: e.status, stderr: e.stderr };
      }
    };
    expect(run(['bridge', '--kafka-brokers', '127.0.0.1:1', '--mqtt-port', 'x'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--mqtt-port: "x" is not an integer') });
    expect(run(['bridge', '--kafka-brokers', '127.0.0.1:1'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--agents-file') });
    expect(run(['nope'])).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown command "nope"') });
    expect(run(['sim', '--rate', 'fast'])).toMatchObject({ code: 2, stderr: expect.stringContaining('--rate: "fast" is not an integer') });
  });
});
