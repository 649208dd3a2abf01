/**
 * Single-node mode: agents → bridge → the processor in the bridge's process → ClickHouse, no
 * Kafka. The PUBACK follows the ClickHouse commit; re-sent payloads are counted once; a crash
 * of the bridge process between the hand-off log and the writes is repaired at restart.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAgent, startBridgeService } from '../bridge/index.js';
import { createProcessor } from '../processor/index.js';
import { waitFor } from './helpers/brokers.js';
import { startClickHouse } from './helpers/clickhouse.js';
import { countPerGeoMinute, pipelineEvents } from './helpers/events.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
let agentsFile: string;
let secret: string;
beforeAll(async () => {
  ch = await startClickHouse();
  agentsFile = join(mkdtempSync(join(tmpdir(), 'vcam-sn-')), 'agents.json');
  secret = await addAgent(agentsFile, 'gw-1');
});
afterAll(() => ch?.stop());

describe('single-node mode', () => {
  it('acknowledges a publish only after its events are in ClickHouse, and counts re-sends once', async () => {
    const downstream = createProcessor({ clickhouseUrl: ch.url, ...ch.auth });
    const svc = await startBridgeService({ mqttPort: 0, agentsFile, downstream });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${svc.mqttPort}`, { clientId: 'gw-1', username: 'gw-1', password: secret });
    const events = pipelineEvents(3_000, { prefix: 's' });
    const count = async () => Number((await ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n);
    for (let i = 0; i < events.length; i += 500) {
      await client.publishAsync('vcam/v1/agents/gw-1/events', JSON.stringify({ v: 1, agentId: 'gw-1', events: events.slice(i, i + 500) }), { qos: 1 });
      // The PUBACK has arrived: the events must already be counted.
      expect(await count()).toBe(i + 500);
    }
    // An agent re-sending after a lost PUBACK, and one bad event beside a good re-send.
    await client.publishAsync('vcam/v1/agents/gw-1/events', JSON.stringify({ v: 1, agentId: 'gw-1', events: [...events.slice(0, 500), { bogus: true }] }), { qos: 1 });
    expect(await count()).toBe(events.length);
    const rows = await ch.query<{ geo_id: number; bucket: number; n: number }>('SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM vcam.geo_type_1m GROUP BY geo_id, bucket');
    expect(Object.fromEntries(rows.map((r) => [`${r.geo_id}@${r.bucket}`, Number(r.n)]))).toEqual(countPerGeoMinute(events));
    expect(Number((await ch.query<{ n: number }>('SELECT sum(duplicates) AS n FROM vcam.device_1m'))[0]!.n)).toBe(500);
    expect(await ch.query('SELECT reason FROM vcam.dlq')).toEqual([{ reason: 'missing_field' }]);
    await client.endAsync();
    await svc.close();
  });

  it('replays the last recorded chunk at start: a hand-off cut short counts exactly once', async () => {
    // Simulate a crash after the chunk was recorded with its rows and before its inserts.
    const before = Number((await ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n);
    const extra = pipelineEvents(200, { prefix: 'crash' });
    const first = createProcessor({ clickhouseUrl: ch.url, ...ch.auth });
    await first.start();
    first.writer.store.writeRows = async () => {
      throw new Error('killed before the chunk was written');
    };
    const failed = new Promise((resolve) => first.writer.once('writeFailed', resolve));
    const forwarded = first.forward({ agentId: 'gw-1', events: extra, rejects: [], receivedAt: Date.now() });
    await failed;
    await first.close();
    await expect(forwarded).rejects.toThrow();
    expect(Number((await ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n)).toBe(before);

    const second = createProcessor({ clickhouseUrl: ch.url, ...ch.auth });
    await second.start();
    await waitFor(async () => Number((await ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n) === before + 200, 10_000, 'the replayed chunk');
    // The agent never got its PUBACK, so it sends the same events again: still counted once.
    await second.forward({ agentId: 'gw-1', events: extra, rejects: [], receivedAt: Date.now() });
    expect(Number((await ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n)).toBe(before + 200);
    await second.close();
  });
});
