/**
 * The archiver as a running service: a batch every `everyMs` (sooner while there is a backlog),
 * retention and vacuum on their own period, /healthz and /metrics, and two alerts in
 * vcam.alerts: `archive_lagging` (the oldest event not yet archived is older than `maxLagMs`)
 * and `archive_failing` (batches have failed for `failingAfterMs`).
 */
import { ClickHouseError, createClient } from '@clickhouse/client';
import { migrate } from '../clickhouse/schema.js';
import { listen, opsRoutes, type RunningServer } from '../common/http.js';
import { silentLogger, type Logger } from '../common/log.js';
import { Counter, Gauge, createRegistry, type Registry } from '../common/metrics.js';
import type { ObjectStore } from '../common/objectstore.js';
import { retry, sleep } from '../common/retry.js';
import { AlertEvaluator, type Finding } from '../processor/alerts/index.js';
import { Archiver, BATCH_CHUNKS } from './archiver.js';

export interface ArchiveServiceOptions {
  clickhouseUrl: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  store: ObjectStore;
  everyMs: number;
  retentionDays: number;
  vacuumAfterMs: number;
  /** How often retention and the vacuum run. */
  expireEveryMs?: number;
  maxLagMs: number;
  failingAfterMs?: number;
  alertEveryMs?: number;
  batchChunks?: number;
  httpPort?: number;
  httpHost?: string;
  registry?: Registry;
  logger?: Logger;
}

export interface ArchiveService {
  archiver: Archiver;
  registry: Registry;
  httpPort?: number;
  close(): Promise<void>;
}

export const ARCHIVE_DEFAULTS = { every: '1m', retention: '30d', vacuumAfter: '7d', expireEvery: '1h', maxLag: '15m', failingAfter: '2m' } as const;

export async function startArchiveService(o: ArchiveServiceOptions): Promise<ArchiveService> {
  const log = o.logger ?? silentLogger;
  const client = createClient({ url: o.clickhouseUrl, username: o.clickhouseUser, password: o.clickhousePassword, request_timeout: 60_000 });
  const registry = o.registry ?? createRegistry({ component: 'archive' });
  const archiver = new Archiver({ client, store: o.store, batchChunks: o.batchChunks, retentionDays: o.retentionDays, vacuumAfterMs: o.vacuumAfterMs });
  const failingAfterMs = o.failingAfterMs ?? 120_000;

  const batches = new Counter({ name: 'vcam_archive_batches_total', help: 'Batches committed to the Delta table (redone: found planned but uncommitted after a restart)', labelNames: ['redone'], registers: [registry] });
  const rows = new Counter({ name: 'vcam_archive_rows_total', help: 'Raw events written to the Delta table', registers: [registry] });
  const bytes = new Counter({ name: 'vcam_archive_bytes_total', help: 'Parquet bytes written to the Delta table', registers: [registry] });
  const files = new Counter({ name: 'vcam_archive_files_total', help: 'Parquet files written to the Delta table', registers: [registry] });
  const failures = new Counter({ name: 'vcam_archive_failures_total', help: 'Archive batches, retention or vacuum runs that failed (retried)', labelNames: ['task'], registers: [registry] });
  const removedFiles = new Counter({ name: 'vcam_archive_removed_files_total', help: 'Files removed from the table by retention', registers: [registry] });
  const vacuumed = new Counter({ name: 'vcam_archive_vacuumed_files_total', help: 'Unreferenced files deleted by the vacuum', registers: [registry] });
  const lagSeconds = () => (archiver.oldestPendingMs === undefined ? 0 : Math.max(0, (Date.now() - archiver.oldestPendingMs) / 1000));
  new Gauge({
    name: 'vcam_archive_lag_seconds',
    help: 'How long the oldest event not yet in the archive has been in ClickHouse (0: none waiting)',
    registers: [registry],
    collect() {
      this.set(lagSeconds());
    },
  });
  new Gauge({
    name: 'vcam_archive_last_success_timestamp_seconds',
    help: 'When the archiver last archived everything it found or committed a batch',
    registers: [registry],
    collect() {
      if (archiver.lastSuccessMs !== undefined) this.set(archiver.lastSuccessMs / 1000);
    },
  });
  archiver.on('batch', (r) => {
    batches.inc({ redone: String(r.redone) });
    rows.inc(r.rows);
    bytes.inc(r.bytes);
    files.inc(r.files);
    log.info({ batch: r.batch, version: r.version, rows: r.rows, files: r.files, bytes: r.bytes, redone: r.redone, ms: r.ms }, 'archive batch committed');
  });
  archiver.on('removed', (n, dates) => {
    removedFiles.inc(n);
    log.info({ files: n, dates }, 'archive retention removed dates');
  });
  archiver.on('vacuumed', (n) => {
    vacuumed.inc(n);
    log.info({ files: n }, 'archive vacuum deleted unreferenced files');
  });

  let failingSince: number | undefined;
  let lastError: string | undefined;
  const failed = (task: string, err: unknown) => {
    failures.inc({ task });
    lastError = (err as Error).message;
    if (failingSince === undefined) {
      failingSince = Date.now();
      log.warn({ task, err: lastError }, `archive ${task} failed; retrying (logged once until it works)`);
    }
  };
  const worked = () => {
    if (failingSince !== undefined) log.info({ forMs: Date.now() - failingSince }, 'archive works again');
    failingSince = undefined;
    lastError = undefined;
  };

  const subject = `archive:${o.store.url}`;
  const alerts = new AlertEvaluator(client, [
    {
      kinds: ['archive_lagging', 'archive_failing'],
      owns: (s) => s === subject,
      async evaluate(now): Promise<Finding[]> {
        const out: Finding[] = [];
        const lag = lagSeconds();
        if (lag * 1000 > o.maxLagMs)
          out.push({ kind: 'archive_lagging', subject, severity: 'warning', message: `the oldest event not yet archived to ${o.store.url} has waited ${Math.round(lag)} s (bound ${Math.round(o.maxLagMs / 1000)} s)` });
        if (failingSince !== undefined && now - failingSince > failingAfterMs)
          out.push({ kind: 'archive_failing', subject, severity: 'critical', message: `archiving to ${o.store.url} has failed since ${new Date(failingSince).toISOString()}: ${lastError}` });
        return out;
      },
    },
  ]);
  alerts.on('opened', (a) => log[a.severity === 'critical' ? 'error' : 'warn']({ kind: a.kind, subject: a.subject }, `ALERT: ${a.message}`));
  alerts.on('resolved', (a) => log.info({ kind: a.kind, subject: a.subject }, 'alert resolved'));

  let phase = 'waiting for ClickHouse';
  const health = () =>
    phase === 'archiving' && failingSince === undefined
      ? { ok: true, lagSeconds: lagSeconds(), archive: o.store.url }
      : { ok: false, phase: failingSince === undefined ? phase : 'failing', lagSeconds: lagSeconds(), ...(lastError && { error: lastError }) };
  let http: RunningServer | undefined;
  if (o.httpPort !== undefined) http = await listen(opsRoutes(registry, health), o.httpPort, o.httpHost ?? '127.0.0.1');

  const stopping = new AbortController();
  // ClickHouse or the store down at start: wait for them, visibly. A table that is not vcam's
  // archive (ArchiveError, not retriable) ends the start with the reason.
  const opened = (async () => {
    await retry(() => migrate(client), { initialMs: 500, maxMs: 5_000, signal: stopping.signal, isRetriable: (err) => !(err instanceof ClickHouseError), onRetry: (err) => failed('start', err) });
    await retry(() => archiver.open(), { initialMs: 500, maxMs: 10_000, signal: stopping.signal, onRetry: (err) => failed('start', err) });
  })();
  await opened.catch(async (err: unknown) => {
    await http?.close();
    await client.close();
    archiver.close();
    throw err;
  });
  phase = 'archiving';
  worked();
  await alerts.start(o.alertEveryMs ?? 10_000);
  const loop = (async () => {
    let lastExpire = 0;
    while (!stopping.signal.aborted) {
      let full = false;
      try {
        const r = await archiver.runBatch();
        worked();
        // A full batch means a backlog, and after a redo nothing was looked for yet: the next batch goes at once.
        full = r !== undefined && (r.redone || r.chunks >= (o.batchChunks ?? BATCH_CHUNKS));
        if (Date.now() - lastExpire >= (o.expireEveryMs ?? 3_600_000)) {
          await archiver.expire();
          lastExpire = Date.now();
        }
      } catch (err) {
        failed('batch', err);
        await archiver.measureLag().catch(() => undefined);
      }
      if (!full) await sleep(failingSince === undefined ? o.everyMs : Math.min(o.everyMs, 5_000), stopping.signal);
    }
  })();
  log.info({ archive: o.store.url, everyMs: o.everyMs, httpPort: http?.port }, 'archiver started');
  let closing: Promise<void> | undefined;
  return {
    archiver,
    registry,
    httpPort: http?.port,
    close() {
      closing ??= (async () => {
        stopping.abort();
        await loop;
        alerts.stop();
        await alerts.tick().catch(() => undefined);
        await http?.close();
        await client.close();
        archiver.close();
        log.info('archiver stopped');
      })();
      return closing;
    },
  };
}
