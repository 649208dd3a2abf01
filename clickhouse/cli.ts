/** `vcam clickhouse` (the embedded server), `vcam migrate` and `vcam geo load`. */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { CLICKHOUSE_AUTH_OPTIONS, clientAuth, type ClickHouseAuthConfig } from '../common/clickhouse.js';
import { defineCommand, type Config } from '../common/config.js';
import { ensureSecretFile, readSecretFile } from '../common/secrets.js';
import { EXIT, parseOrHelp, runService } from '../common/cli.js';
import { ConfigError, VcamError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { loadGeo, parseGeoCsv } from './geo.js';
import { migrate } from './schema.js';
import { ClickHouseServer } from './server.js';

export const clickhouseCommand = defineCommand({
  name: 'vcam clickhouse',
  summary: "The embedded ClickHouse: the ClickHouse engine in-process (chDB) behind ClickHouse's HTTP interface.\nOne process owns a data directory.",
  options: {
    dataDir: { type: 'string', required: true, env: 'VCAM_CLICKHOUSE_DATA_DIR', description: 'data directory (created if missing)' },
    port: { type: 'int', default: 8123, env: 'VCAM_CLICKHOUSE_PORT', description: 'HTTP port' },
    host: { type: 'string', default: '127.0.0.1', env: 'VCAM_CLICKHOUSE_HOST', description: 'listen address' },
    user: { type: 'string', default: 'default', env: 'VCAM_CLICKHOUSE_USER', description: 'the user every request but /ping must authenticate as (HTTP basic auth or X-ClickHouse-User/Key)' },
    password: { type: 'string', secret: true, env: 'VCAM_CLICKHOUSE_PASSWORD', description: "the user's password (default: made at first start and kept in <data-dir>/clickhouse.secret, mode 0600)" },
    passwordFile: { type: 'string', env: 'VCAM_CLICKHOUSE_PASSWORD_FILE', description: 'read the password from this file instead' },
    insecureNoAuth: { type: 'boolean', default: false, description: 'serve without authentication: any local process could then query and change the data; only for a throw-away directory' },
    allowedOrigins: { type: 'list', default: [], description: 'origins (scheme://host:port) whose browser pages may call this server; requests with any other Origin are refused (none by default)' },
    maxQueuedRequests: { type: 'int', default: 1000, description: 'requests waiting for the engine (it runs one at a time) beyond which it answers 503 with Retry-After' },
    migrate: { type: 'boolean', default: true, description: 'create or upgrade the vcam database at startup' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

const clientOptions = {
  clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP URL' },
  ...CLICKHOUSE_AUTH_OPTIONS,
} as const;

export const migrateCommand = defineCommand({
  name: 'vcam migrate',
  summary: 'Creates or upgrades the vcam database (idempotent; the processor also runs it at startup).',
  options: {
    ...clientOptions,
    rawRetention: { type: 'int', default: 30, description: 'days raw events are kept' },
    aggregateRetention: { type: 'int', default: 90, description: 'days aggregates are kept' },
  },
});

export const geoCommand = defineCommand({
  name: 'vcam geo',
  usage: 'vcam geo load FILE.csv [options]',
  summary: 'Loads the geo reference table from a CSV (geoId,geoName,region), replacing the previous load.\nRunning processors pick it up within seconds.',
  options: clientOptions,
});

export function serverMain(argv: string[]): Promise<number> {
  return runService(clickhouseCommand, argv, async (c) => {
    const log = createLogger('clickhouse', c.logLevel);
    const auth = serverAuth(c);
    if (!auth) log.warn('authentication is off (--insecure-no-auth): any local process can query and change this data');
    const server = new ClickHouseServer({ dataDir: c.dataDir, port: c.port, host: c.host, ...auth, allowedOrigins: c.allowedOrigins, maxQueuedRequests: c.maxQueuedRequests, logger: log });
    await server.start();
    if (c.migrate) {
      const client = createClient({ url: `http://127.0.0.1:${server.port}`, username: auth?.user, password: auth?.password });
      const applied = await migrate(client);
      await client.close();
      if (applied.length) log.info({ applied }, 'migrations applied');
    }
    log.info({ port: server.port, dataDir: c.dataDir, user: auth?.user, passwordFrom: auth && (c.password ? 'VCAM_CLICKHOUSE_PASSWORD or --password' : (c.passwordFile ?? secretPath(c.dataDir))) }, 'embedded ClickHouse serving HTTP');
    return server;
  });
}

/** Where the embedded ClickHouse keeps the password it made: clients read it with --clickhouse-password-file. */
export const secretPath = (dataDir: string) => join(dataDir, 'clickhouse.secret');

/** Authentication is on unless refused on purpose: the password given, else the one in the data directory (made once). */
function serverAuth(c: Config<typeof clickhouseCommand.options>): { user: string; password: string } | undefined {
  if (c.insecureNoAuth) {
    if (c.password || c.passwordFile) throw new VcamError('USAGE', '--insecure-no-auth with a password: give one or the other');
    return undefined;
  }
  mkdirSync(c.dataDir, { recursive: true });
  const password = c.password ?? (c.passwordFile ? readSecretFile(c.passwordFile, '--password-file') : ensureSecretFile(secretPath(c.dataDir)));
  return { user: c.user, password };
}

export async function migrateMain(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(migrateCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  const client = clientFor(c);
  try {
    const applied = await migrate(client, { rawDays: c.rawRetention, aggregateDays: c.aggregateRetention });
    process.stdout.write(`${JSON.stringify({ applied })}\n`);
    return EXIT.OK;
  } finally {
    await client.close();
  }
}

export async function geoMain(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(geoCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const [verb, file, ...extra] = parsed.positionals;
  if (verb !== 'load' || !file || extra.length) throw new VcamError('USAGE', 'usage: vcam geo load FILE.csv [--clickhouse-url URL]');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const rows = parseGeoCsv(text, file);
  const c = parsed.config;
  const client = clientFor(c);
  try {
    await migrate(client);
    await loadGeo(client, rows);
    process.stdout.write(`${JSON.stringify({ loaded: rows.length, file })}\n`);
    return EXIT.OK;
  } finally {
    await client.close();
  }
}

function clientFor(c: { clickhouseUrl: string } & ClickHouseAuthConfig) {
  return createClient({ url: c.clickhouseUrl, ...clientAuth(c) });
}
