/** The agent must work against any MQTT broker, not only ours: Debian's mosquitto, over 3.1.1 and 5. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentService } from '../agent/index.js';
import { collect, startMosquitto, waitFor, type TestBroker } from './helpers/brokers.js';

let mosquitto: TestBroker;
beforeAll(async () => {
  mosquitto = await startMosquitto();
});
afterAll(() => mosquitto.stop());

describe.each([4, 5] as const)('agent → mosquitto over MQTT protocol %i', (protocol) => {
  it('delivers every posted event once with the returned ids, in sequence order', async () => {
    const id = `gw-m${protocol}`;
    const sub = await collect(mosquitto.url, `vcam/v1/agents/${id}/events`);
    const svc = await startAgentService({ id, dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-')), httpPort: 0, mqttUrl: mosquitto.url, mqttProtocol: protocol, batchMaxEvents: 100 });
    try {
      const ids: string[] = [];
      for (let k = 0; k < 4; k++) {
        const batch = Array.from({ length: 500 }, (_, i) => ({ deviceId: `cam-${i % 13}`, geoId: i % 9, ts: Date.now() - 10_000 + k * 500 + i, type: 'motion' }));
        const r = await fetch(`http://127.0.0.1:${svc.port}/v1/events`, { method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'application/json' } });
        expect(r.status).toBe(202);
        ids.push(...((await r.json()) as { eventIds: string[] }).eventIds);
      }
      await sub.waitFor(() => sub.events.length >= 2000, 20_000, '2000 events via mosquitto');
      expect(sub.events.map((e) => e.eventId)).toEqual(ids);
      expect(sub.events.map((e) => e.seq)).toEqual(ids.map((_, i) => i + 1));
      await waitFor(() => svc.agent.stats().backlogEvents === 0, 5_000, 'outbox to empty');
    } finally {
      await svc.close();
      await sub.stop();
    }
  });
});
