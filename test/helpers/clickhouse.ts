/** The embedded ClickHouse server for tests, with the vcam schema and a client connected to it. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { migrate } from '../../clickhouse/schema.js';
import { ClickHouseServer } from '../../clickhouse/server.js';
import { ensureSecretFile } from '../../common/secrets.js';

export interface TestClickHouse {
  server: ClickHouseServer;
  url: string;
  /** Authentication is on, as in production: the password, and a file holding it (mode 0600). */
  password: string;
  passwordFile: string;
  /** For in-process components' options. */
  auth: { clickhouseUser: string; clickhousePassword: string };
  /** For a vcam command line: --clickhouse-url and --clickhouse-password-file. */
  args: string[];
  client: ClickHouseClient;
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  stop(): Promise<void>;
}

export async function startClickHouse(dataDir = mkdtempSync(join(tmpdir(), 'vcam-ch-'))): Promise<TestClickHouse> {
  const passwordFile = join(dataDir, 'clickhouse.secret');
  const password = ensureSecretFile(passwordFile);
  const server = new ClickHouseServer({ dataDir, port: 0, user: 'default', password });
  await server.start();
  const url = `http://127.0.0.1:${server.port}`;
  const client = createClient({ url, password });
  await migrate(client);
  return {
    server,
    url,
    password,
    passwordFile,
    auth: { clickhouseUser: 'default', clickhousePassword: password },
    args: ['--clickhouse-url', url, '--clickhouse-password-file', passwordFile],
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
