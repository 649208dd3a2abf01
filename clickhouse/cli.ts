/** `vcam clickhouse` (the embedded server), `vcam migrate` and `vcam geo load|export`. */
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClickHouseError, createClient, type ClickHouseClient } from '@clickhouse/client';
import { CLICKHOUSE_AUTH_OPTIONS, clientAuth, type ClickHouseAuthConfig } from '../common/clickhouse.js';
import { defineCommand, type Config } from '../common/config.js';
import { ensureSecretFile, readSecretFile } from '../common/secrets.js';
import { EXIT, parseOrHelp, runService } from '../common/cli.js';
import { ConfigError, VcamError } from '../common/errors.js';
import { checkKey, type ObjectStore } from '../common/objectstore.js';
import { openStoreFrom, S3_OPTIONS } from '../common/s3.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { GEO_COLUMNS, isParquet, loadGeo, parseGeoCsv, parseGeoParquet } from './geo.js';
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

const GEO_USAGE = 'vcam geo load FILE|s3://BUCKET/KEY [options]\n       vcam geo export [--format csv|parquet] [--output FILE|s3://BUCKET/KEY] [options]';

export const geoCommand = defineCommand({
  name: 'vcam geo',
  usage: GEO_USAGE,
  summary: [
    'load FILE: replaces the geo reference table with the rows of a CSV file (header line geoId,geoName,region)',
    '  or a Parquet file (columns geoId, geoName, region), told apart by a name ending in .parquet or the',
    '  file starting with PAR1 (or --format). Every row is checked first: geoId an unsigned 32-bit integer,',
    '  once; geoName not empty; no line breaks. One bad row refuses the file whole, naming each bad line (CSV)',
    '  or row (Parquet, counted from 1). Running processors pick up a load within seconds.',
    'export: writes the current load (what processors use), ordered by geoId, as CSV or Parquet that load',
    '  takes back: to --output FILE (written whole, then renamed into place) or to stdout (Parquet not to a terminal).',
    'FILE may be s3://bucket/key on S3 or an S3-compatible store (--s3-endpoint, --s3-credentials-file).',
  ].join('\n'),
  options: {
    ...clientOptions,
    format: { type: 'string', choices: ['csv', 'parquet'], env: 'VCAM_GEO_FORMAT', description: "load: the file's format (default: detected); export: the format to write (default: parquet for an --output ending in .parquet, else csv)" },
    output: { type: 'string', env: 'VCAM_GEO_OUTPUT', description: 'export: the file (or s3://bucket/key) to write (default: stdout)' },
    // The same flags and variables as vcam archive's, so one S3 setup serves both.
    ...S3_OPTIONS,
  },
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
  const [verb, ...args] = parsed.positionals;
  const c = parsed.config;
  if (verb === 'load' && args.length === 1 && c.output === undefined) return geoLoad(args[0]!, c);
  if (verb === 'export' && args.length === 0) return geoExport(c);
  throw new VcamError('USAGE', `usage: ${GEO_USAGE}`);
}

type GeoConfig = Config<typeof geoCommand.options>;

/** `s3://bucket/key`: the bucket's store and the key; undefined for a local path. */
function s3Object(url: string, c: GeoConfig): { store: ObjectStore; key: string } | undefined {
  if (!url.startsWith('s3://')) return undefined;
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new ConfigError(`${url}: a geo file on S3 is named s3://bucket/key`);
  return { store: openStoreFrom(`s3://${m[1]}`, c), key: checkKey(m[2]!) };
}

async function geoLoad(file: string, c: GeoConfig): Promise<number> {
  const s3 = s3Object(file, c);
  let bytes: Buffer;
  if (s3) {
    const got = await s3.store.get(s3.key);
    if (!got) throw new ConfigError(`cannot read ${file}: there is no such object`);
    bytes = got;
  } else {
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const format = c.format ?? (file.toLowerCase().endsWith('.parquet') || isParquet(bytes) ? 'parquet' : 'csv');
  // Checked whole before connecting: a bad file changes nothing.
  const rows = format === 'parquet' ? await parseGeoParquet(bytes, file) : parseGeoCsv(bytes.toString('utf8'), file);
  const client = clientFor(c);
  try {
    await migrate(client);
    await loadGeo(client, rows);
    process.stdout.write(`${JSON.stringify({ loaded: rows.length, file, format })}\n`);
    return EXIT.OK;
  } finally {
    await client.close();
  }
}

/** The current load as the processor reads it (processor/geo.ts): the latest loaded_at, FINAL. */
async function latestLoad(client: ClickHouseClient): Promise<{ v: string; n: number } | undefined> {
  try {
    const [latest] = await (
      await client.query({
        query: 'SELECT toString(loaded_at) AS v, count() AS n FROM vcam.geo FINAL WHERE loaded_at = (SELECT max(loaded_at) FROM vcam.geo) GROUP BY loaded_at',
        format: 'JSONEachRow',
      })
    ).json<{ v: string; n: number | string }>();
    return latest && { v: latest.v, n: Number(latest.n) };
  } catch (err) {
    // UNKNOWN_TABLE, UNKNOWN_DATABASE: never migrated, so never loaded.
    if (err instanceof ClickHouseError && (err.code === '60' || err.code === '81')) return undefined;
    throw err;
  }
}

async function geoExport(c: GeoConfig): Promise<number> {
  const format = c.format ?? (c.output?.toLowerCase().endsWith('.parquet') ? 'parquet' : 'csv');
  if (c.output === undefined && format === 'parquet' && process.stdout.isTTY) throw new VcamError('USAGE', 'Parquet is binary: not written to a terminal; give --output FILE or redirect stdout');
  const s3 = c.output === undefined ? undefined : s3Object(c.output, c);
  // A file is written whole before it takes its name (beside it, so the rename is atomic); an S3 object is uploaded whole.
  const tmpDir = s3 && mkdtempSync(join(tmpdir(), 'vcam-geo-'));
  const tmp = tmpDir ? join(tmpDir, 'geo') : c.output && `${c.output}.${randomBytes(6).toString('hex')}.tmp`;
  const client = clientFor(c);
  try {
    const before = await latestLoad(client);
    if (!before) throw new ConfigError('nothing to export: no geo table has been loaded (vcam geo load FILE)');
    // Pinned to that load, and checked again after: a load arriving meanwhile would make this file half of each.
    const { stream } = await client.exec({
      query: `SELECT geo_id AS geoId, geo_name AS geoName, region FROM vcam.geo FINAL WHERE loaded_at = {v:DateTime64(3, 'UTC')} ORDER BY geo_id FORMAT ${format === 'parquet' ? 'Parquet' : 'CSV'}`,
      query_params: { v: before.v },
    });
    // ClickHouse's CSVWithNames quotes the header; the CSV load takes it bare, as people write it.
    const body = format === 'csv' ? withHead(`${GEO_COLUMNS.join(',')}\n`, stream) : stream;
    if (tmp) await pipeline(body, createWriteStream(tmp, { mode: 0o644 }));
    else await pipeline(body, process.stdout, { end: false });
    const after = await latestLoad(client);
    if (after?.v !== before.v) throw new VcamError('UNAVAILABLE', `a geo load arrived during the export (${before.v} then ${after?.v}); ${tmp ? 'nothing written' : 'the output is not one load'}: run the export again`, { retriable: true });
    if (tmp) {
      if (s3) await s3.store.putFile(s3.key, tmp);
      else renameSync(tmp, c.output!);
      process.stdout.write(`${JSON.stringify({ exported: before.n, file: c.output, format, loadedAt: before.v })}\n`);
    }
    return EXIT.OK;
  } finally {
    if (tmp) rmSync(tmpDir ?? tmp, { recursive: true, force: true });
    await client.close();
  }
}

async function* withHead(head: string, rest: Readable): AsyncGenerator<Buffer> {
  yield Buffer.from(head);
  for await (const chunk of rest) yield chunk as Buffer;
}

function clientFor(c: { clickhouseUrl: string } & ClickHouseAuthConfig) {
  return createClient({ url: c.clickhouseUrl, ...clientAuth(c) });
}
