/** `vcam archive`: raw events from ClickHouse into a Delta Lake table, on a local disk or S3. */
import { CLICKHOUSE_AUTH_OPTIONS, clickhouseCredentials } from '../common/clickhouse.js';
import { defineCommand } from '../common/config.js';
import { EXIT, parseOrHelp, runService } from '../common/cli.js';
import { VcamError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { ARCHIVE_DEFAULTS, startArchiveService } from './service.js';
import { openStoreFrom, S3_OPTIONS } from '../common/s3.js';
import { Archiver, BATCH_CHUNKS } from './archiver.js';
import { createClient } from '@clickhouse/client';
import { migrate } from '../clickhouse/schema.js';

export const archiveCommand = defineCommand({
  name: 'vcam archive',
  usage: 'vcam archive --archive-url URL [options]',
  summary:
    'Copies raw events from ClickHouse into a Delta Lake table partitioned by event date, exactly once\n' +
    '(late events and restarts included), keeps --archive-retention of dates and vacuums what it removed.\n' +
    'URL: a local directory, or s3://bucket/prefix with --s3-endpoint for S3-compatible stores.',
  options: {
    archiveUrl: { type: 'string', required: true, env: 'VCAM_ARCHIVE_URL', description: 'the Delta table: a directory, file:///dir, or s3://bucket/prefix' },
    ...S3_OPTIONS,
    clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP URL' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    every: { type: 'duration', default: ARCHIVE_DEFAULTS.every, description: 'how often a batch is archived (sooner while a backlog lasts)' },
    archiveRetention: { type: 'duration', default: ARCHIVE_DEFAULTS.retention, description: 'event dates older than this leave the table (whole days)' },
    vacuumAfter: { type: 'duration', default: ARCHIVE_DEFAULTS.vacuumAfter, description: 'removed and orphaned files are deleted once this old (readers of older versions need them until then)' },
    expireEvery: { type: 'duration', default: ARCHIVE_DEFAULTS.expireEvery, description: 'how often retention and the vacuum run' },
    maxLag: { type: 'duration', default: ARCHIVE_DEFAULTS.maxLag, description: 'alert (archive_lagging) when the oldest event not yet archived has waited longer' },
    failingAfter: { type: 'duration', default: ARCHIVE_DEFAULTS.failingAfter, description: 'alert (archive_failing) when batches have failed for this long' },
    batchChunks: { type: 'int', default: BATCH_CHUNKS, description: 'processor chunks per batch at most (one Delta commit, one Parquet file per event date)' },
    once: { type: 'boolean', default: false, description: 'archive what is there, apply retention and the vacuum, and exit (for cron)' },
    httpPort: { type: 'int', default: 9104, description: 'port for /healthz and /metrics' },
    httpHost: { type: 'string', default: '127.0.0.1', description: 'HTTP listen address' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

export async function main(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(archiveCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  if (parsed.positionals.length) throw new VcamError('USAGE', `unexpected argument "${parsed.positionals[0]}"; run \`vcam archive --help\``);
  const store = openStoreFrom(c.archiveUrl, c);
  const log = createLogger('archive', c.logLevel);
  const { clickhouseUser, clickhousePassword } = clickhouseCredentials(c);
  const retentionDays = Math.max(1, Math.round(c.archiveRetention / 86_400_000));
  if (c.once) {
    const client = createClient({ url: c.clickhouseUrl, username: clickhouseUser, password: clickhousePassword, request_timeout: 60_000 });
    const archiver = new Archiver({ client, store, batchChunks: c.batchChunks, retentionDays, vacuumAfterMs: c.vacuumAfter });
    try {
      await migrate(client);
      const batches = await archiver.drain();
      const expired = await archiver.expire();
      const rows = batches.reduce((n, b) => n + b.rows, 0);
      log.info({ batches: batches.length, rows, ...expired }, 'archived');
      process.stdout.write(`${JSON.stringify({ archive: store.url, batches: batches.length, rows, files: batches.reduce((n, b) => n + b.files, 0), bytes: batches.reduce((n, b) => n + b.bytes, 0), ...expired })}\n`);
      return EXIT.OK;
    } finally {
      archiver.close();
      await client.close();
    }
  }
  return runService(archiveCommand, argv, () =>
    startArchiveService({
      clickhouseUrl: c.clickhouseUrl,
      clickhouseUser,
      clickhousePassword,
      store,
      everyMs: c.every,
      retentionDays,
      vacuumAfterMs: c.vacuumAfter,
      expireEveryMs: c.expireEvery,
      maxLagMs: c.maxLag,
      failingAfterMs: c.failingAfter,
      batchChunks: c.batchChunks,
      httpPort: c.httpPort,
      httpHost: c.httpHost,
      logger: log,
      registry: createRegistry({ component: 'archive' }, true),
    }),
  );
}
