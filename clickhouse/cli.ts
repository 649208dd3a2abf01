/** `vcam clickhouse` (the embedded server), `vcam migrate` and `vcam geo load`. */
import { readFileSync } from 'node:fs';
import { createClient } from '@clickhouse/client';
import { defineCommand } from '../common/config.js';
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
    user: { type: 'string', env: 'VCAM_CLICKHOUSE_USER', description: 'require this user (basic auth)' },
    password: { type: 'string', secret: true, env: 'VCAM_CLICKHOUSE_PASSWORD', description: 'password for --user' },
    maxQueuedRequests: { type: 'int', default: 1000, description: 'requests waiting for the engine (it runs one at a time) beyond which it answers 503 with Retry-After' },
    migrate: { type: 'boolean', default: true, description: 'create or upgrade the vcam database at startup' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

const clientOptions = {
  clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP URL' },
  clickhouseUser: { type: 'string', description: 'ClickHouse user' },
  clickhousePassword: { type: 'string', secret: true, description: 'ClickHouse password' },
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
    const server = new ClickHouseServer({ dataDir: c.dataDir, port: c.port, host: c.host, user: c.user, password: c.password, maxQueuedRequests: c.maxQueuedRequests, logger: log });
    await server.start();
    if (c.migrate) {
      const client = createClient({ url: `http://127.0.0.1:${server.port}`, username: c.user, password: c.password });
      const applied = await migrate(client);
      await client.close();
      if (applied.length) log.info({ applied }, 'migrations applied');
    }
    log.info({ port: server.port, dataDir: c.dataDir }, 'embedded ClickHouse serving HTTP');
    return server;
  });
}

export async function migrateMain(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(migrateCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  const client = createClient({ url: c.clickhouseUrl, username: c.clickhouseUser, password: c.clickhousePassword });
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
  const client = createClient({ url: c.clickhouseUrl, username: c.clickhouseUser, password: c.clickhousePassword });
  try {
    await migrate(client);
    await loadGeo(client, rows);
    process.stdout.write(`${JSON.stringify({ loaded: rows.length, file })}\n`);
    return EXIT.OK;
  } finally {
    await client.close();
  }
}
