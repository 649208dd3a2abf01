/**
 * Copies raw events from ClickHouse into the Delta table, one batch of whole chunks at a time,
 * exactly once (the argument is in docs/architecture.md, "The archive"):
 *
 *   1. plan    the batch's chunks are recorded in ClickHouse (vcam.archive_chunks) as batch
 *              B = the table's txn version + 1, before anything is written;
 *   2. files   each event date's rows become a new Parquet file (never overwritten);
 *   3. commit  one Delta commit adds the files with txn {appId, version: B}, put-if-absent;
 *   4. record  vcam.archive_batches notes it (for lag and the console only).
 *
 * After a crash anywhere, the log's txn version V says what is in the table: a plan above V is
 * redone as recorded (its cut files are orphans that a vacuum removes), nothing at or below V
 * is written again, and a chunk once planned is never planned again.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { crashPoint } from '../common/crash.js';
import type { ObjectStore } from '../common/objectstore.js';
import { ArchiveError, DeltaLog, schemaDifference, type Snapshot } from './delta.js';
import { ARCHIVE_SCHEMA, PARTITION_COLUMN, writeBatchFiles } from './files.js';
import { eventsOf, Ledger, type ArchiveChunk } from './ledger.js';

/** The application id of vcam's batches in the table's `txn` actions. */
export const APP_ID = 'vcam-archive';
/** Chunks per batch by default: their ids travel in the query's URL (ClickHouse takes 1 MiB). */
export const BATCH_CHUNKS = 500;

export interface ArchiverOptions {
  client: ClickHouseClient;
  store: ObjectStore;
  /** Chunks per batch at most (a batch is one commit, with one file per event date). */
  batchChunks?: number;
  /** Days of event dates kept; older dates are removed from the table. */
  retentionDays?: number;
  /** Removed and orphaned files are deleted once this old (Delta's deletedFileRetentionDuration). */
  vacuumAfterMs?: number;
}

export interface BatchResult {
  batch: number;
  version: number;
  rows: number;
  files: number;
  bytes: number;
  chunks: number;
  /** A plan found uncommitted at start, written again. */
  redone: boolean;
  ms: number;
}

export interface ArchiverEvents {
  batch: [r: BatchResult];
  removed: [files: number, dates: string[]];
  vacuumed: [files: number];
}

export class Archiver extends EventEmitter<ArchiverEvents> {
  readonly log: DeltaLog;
  private ledger: Ledger | undefined;
  private readonly tmp = mkdtempSync(join(tmpdir(), 'vcam-archive-'));
  /** When the oldest chunk not yet in the table was recorded (epoch ms), as last seen; undefined when none was. */
  oldestPendingMs: number | undefined;
  lastSuccessMs: number | undefined;
  /** The table's txn version as last read. */
  private committed = 0;

  constructor(private readonly o: ArchiverOptions) {
    super();
    this.log = new DeltaLog(o.store);
  }

  /** Creates the table if needed and refuses one whose schema is not vcam's. */
  async open(): Promise<Snapshot> {
    const snap = await this.log.create(ARCHIVE_SCHEMA);
    const diff = schemaDifference(snap.schema, ARCHIVE_SCHEMA);
    if (diff.length) {
      throw new ArchiveError(
        `${this.o.store.url} is a Delta table whose schema is not vcam's archive schema: ${diff.join('; ')}. A schema change is a migration of the table, not something the archiver adapts to; archive elsewhere or migrate it (docs/operations.md)`,
      );
    }
    this.ledger ??= new Ledger(this.o.client, snap.tableId);
    return snap;
  }

  /** One batch, if there is anything to archive; undefined when there is not. */
  async runBatch(now = Date.now()): Promise<BatchResult | undefined> {
    const started = Date.now();
    const snap = await this.open();
    const ledger = this.ledger!;
    const committed = snap.txn.get(APP_ID) ?? 0;
    this.committed = committed;
    const planned = await ledger.lastPlanned();
    let batch: number;
    let chunks: ArchiveChunk[];
    let redone = false;
    // The oldest chunk this batch leaves behind, once it commits (unknown after a redo: the next look says).
    let leftOldest: number | undefined;
    if (planned > committed) {
      if (planned > committed + 1) throw new ArchiveError(`batch ${planned} is planned but the table holds batches up to ${committed} only: plans are made one at a time, so ClickHouse and ${this.o.store.url} do not belong together`);
      batch = planned;
      chunks = await ledger.planOf(batch);
      redone = true;
    } else {
      if (committed > 0 && !(await ledger.hasRecord(committed))) await this.record(ledger, committed, snap.version, await ledger.planOf(committed), undefined);
      const limit = this.o.batchChunks ?? BATCH_CHUNKS;
      const candidates = await ledger.unplanned(limit, now);
      const complete = await ledger.complete(candidates);
      const chosen = new Set(complete.map((c) => c.token));
      const left = candidates.filter((c) => !chosen.has(c.token));
      // Once these are planned, later looks start at the oldest chunk left (or where this look ended).
      const floor = left[0]?.writtenMs ?? (candidates.length === limit ? candidates[candidates.length - 1]!.writtenMs : now);
      leftOldest = left[0]?.writtenMs;
      this.oldestPendingMs = candidates[0]?.writtenMs;
      if (complete.length === 0) {
        ledger.advance(floor);
        if (candidates.length === 0) this.lastSuccessMs = Date.now();
        return undefined;
      }
      batch = committed + 1;
      chunks = await ledger.plan(batch, complete, now);
      ledger.advance(floor);
    }
    crashPoint('archive-planned');
    this.oldestPendingMs = Math.min(this.oldestPendingMs ?? Infinity, ...chunks.map((c) => c.writtenMs));
    const files = await writeBatchFiles(this.o.client, this.o.store, this.tmp, batch, chunks);
    const want = chunks.reduce((n, c) => n + eventsOf(c), 0);
    if (files.rows !== want) {
      // Rows of a complete chunk only go away by ClickHouse's TTL: the batch cannot be what it was.
      throw new ArchiveError(`batch ${batch}: ClickHouse returned ${files.rows} rows for chunks that held ${want}; are raw events expiring (TTL) before they are archived?`);
    }
    crashPoint('archive-files');
    const commit = await this.log.commitBatch(APP_ID, batch, files.adds, { operationParameters: { mode: 'Append', batch: String(batch) } });
    crashPoint('archive-committed');
    const result: BatchResult = { batch, version: commit.version, rows: files.rows, files: files.adds.length, bytes: files.bytes, chunks: chunks.length, redone, ms: Date.now() - started };
    await this.record(ledger, batch, commit.version, chunks, files);
    this.lastSuccessMs = Date.now();
    this.oldestPendingMs = leftOldest;
    this.emit('batch', result);
    return result;
  }

  /** The lag from ClickHouse alone, for when a batch cannot run (the store is down): nothing archived since moves it. */
  async measureLag(): Promise<void> {
    if (this.ledger) this.oldestPendingMs = await this.ledger.oldestUnarchived(this.committed);
  }

  private async record(ledger: Ledger, batch: number, version: number, chunks: ArchiveChunk[], files: { rows: number; adds: unknown[]; bytes: number } | undefined): Promise<void> {
    await ledger.committed({
      batch,
      version,
      rows: files?.rows ?? chunks.reduce((n, c) => n + eventsOf(c), 0),
      files: files?.adds.length ?? 0,
      bytes: files?.bytes ?? 0,
      oldestWrittenMs: Math.min(...chunks.map((c) => c.writtenMs), Date.now()),
    });
  }

  /** Runs batches until there is nothing left to archive; returns them. */
  async drain(): Promise<BatchResult[]> {
    const out: BatchResult[] = [];
    for (let r = await this.runBatch(); r; r = await this.runBatch()) out.push(r);
    return out;
  }

  /**
   * Retention: event dates older than `retentionDays` leave the table (Delta `remove` actions;
   * readers no longer see them, time travel still does). Then the vacuum: files no live `add`
   * names, removed or orphaned longer than `vacuumAfterMs` ago, are deleted.
   */
  async expire(now = Date.now()): Promise<{ removed: number; vacuumed: number }> {
    const snap = await this.open();
    let removed = 0;
    if (this.o.retentionDays !== undefined) {
      const cutoff = new Date(now - this.o.retentionDays * 86_400_000).toISOString().slice(0, 10);
      const old = [...snap.files.values()].filter((a) => (a.partitionValues[PARTITION_COLUMN] ?? '') < cutoff);
      if (old.length) {
        await this.log.remove(
          old.map((a) => a.path),
          { operationParameters: { predicate: `${PARTITION_COLUMN} < '${cutoff}'` } },
        );
        removed = old.length;
        this.emit('removed', removed, [...new Set(old.map((a) => a.partitionValues[PARTITION_COLUMN]!))].sort());
      }
    }
    // Measured from now, after the removal above: its deletionTimestamp is later than `now`.
    const vacuumed = await this.vacuum(Date.now());
    return { removed, vacuumed };
  }

  private async vacuum(now: number): Promise<number> {
    const after = this.o.vacuumAfterMs ?? 7 * 86_400_000;
    const snap = (await this.log.snapshot())!;
    let deleted = 0;
    for (const obj of await this.o.store.list('')) {
      // The log, and anything else under a `_` or `.` directory, is not data (as Delta's VACUUM).
      if (/^[_.]/.test(obj.key) || obj.key.split('/').some((p) => p.startsWith('_') || p.startsWith('.'))) continue;
      if (snap.files.has(obj.key)) continue;
      const since = snap.removed.get(obj.key) ?? obj.modified;
      if (now - since < after) continue;
      await this.o.store.delete(obj.key);
      deleted++;
    }
    if (deleted) this.emit('vacuumed', deleted);
    return deleted;
  }

  close(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
