/** The migrations against the real engine (chDB behind `vcam clickhouse`). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64, migrate } from './schema.js';
import { ClickHouseServer } from './server.js';

let server: ClickHouseServer;
let client: ClickHouseClient;
beforeAll(async () => {
  server = new ClickHouseServer({ dataDir: mkdtempSync(join(tmpdir(), 'vcam-schema-')), port: 0 });
  await server.start();
  client = createClient({ url: `http://127.0.0.1:${server.port}` });
});
afterAll(async () => {
  await client?.close();
  await server?.close();
});

const deadLetter = (agent_id: string, payload: string, kafka_offset: number) => ({
  received_at: '2026-11-25 12:00:00.000',
  agent_id,
  reason: 'invalid_json',
  message: 'x',
  payload,
  kafka_partition: 0,
  kafka_offset,
  topic: 'vcam.events.dlq',
});

describe('schema', () => {
  it('applies every migration once', async () => {
    expect(await migrate(client)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(await migrate(client)).toEqual([]);
  });

  it("expires chunk records after 7 days, as their rows and Kafka's log do, so recovery's FINAL read stays small", async () => {
    const chunk = (start: number, daysAgo: number) => ({ topic: 'vcam.events', kafka_partition: 0, start_offset: start, end_offset: start + 9, written_at: dt64(Date.now() - daysAgo * 86_400_000), token: `t${start}` });
    await client.insert({ table: 'vcam.chunks', format: 'JSONEachRow', values: [chunk(0, 8), chunk(10, 7.5), chunk(20, 1)] });
    await client.command({ query: 'OPTIMIZE TABLE vcam.chunks FINAL' });
    const left = await (await client.query({ query: 'SELECT start_offset FROM vcam.chunks FINAL ORDER BY start_offset', format: 'JSONEachRow' })).json<{ start_offset: string | number }>();
    expect(left.map((r) => Number(r.start_offset))).toEqual([20]);
  });

  it("gives a dead letter an identity: the same agent's same bytes, delivered twice, count once", async () => {
    await client.insert({
      table: 'vcam.dlq',
      format: 'JSONEachRow',
      values: [deadLetter('gw-1', '{"v":1,"ev', 1), deadLetter('gw-1', '{"v":1,"ev', 2), deadLetter('gw-1', '{"v":1,"ew', 3), deadLetter('gw-2', '{"v":1,"ev', 4)],
    });
    const [r] = await (await client.query({ query: 'SELECT count() AS rows, uniqExact(dlq_id) AS n FROM vcam.dlq', format: 'JSONEachRow' })).json<{ rows: string; n: string }>();
    expect({ rows: Number(r!.rows), n: Number(r!.n) }).toEqual({ rows: 4, n: 3 });
  });
});
