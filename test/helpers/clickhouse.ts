/** The embedded ClickHouse server for tests, with the vcam schema and a client connected to it. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { migrate } from '../../clickhouse/schema.js';
import { ClickHouseServer } from '../../clickhouse/server.js';

export async function startClickHouse(dataDir = mkdtempSync(join(tmpdir(), 'vcam-ch-'))): Promise<{ server: ClickHouseServer; url: string; client: ClickHouseClient; query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>; stop(): Promise<void> }> {
  const server = new ClickHouseServer({ dataDir, port: 0 });
  await server.start();
  const url = `http://127.0.0.1:${server.port}`;
  const client = createClient({ url });
  await migrate(client);
  return {
    server,
    url,
    client,
    query: async <T>(sql: string, params?: Record<string, unknown>) => (await client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json<T>(),
    async stop() {
      await client.close();
      await server.close();
    },
  };
}

/** A column's total over a table, as a number (ClickHouse returns large sums as strings). */
export async function columnSum(ch: { query<T>(sql: string): Promise<T[]> }, table: string, column = 'events'): Promise<number> {
  return Number((await ch.query<{ n: number | string }>(`SELECT sum(${column}) AS n FROM ${table}`))[0]!.n);
}
