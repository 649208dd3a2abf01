/**
 * The agent's store-and-forward buffer: a SQLite file (better-sqlite3, WAL) holding every
 * accepted event until the MQTT PUBACK that covers it.
 *
 * - `append` group-commits: calls made in the same turn of the event loop share one
 *   transaction, so many small HTTP requests cost one fsync, and each caller's promise
 *   resolves only after that commit.
 * - `seq` is SQLite's AUTOINCREMENT rowid: per agent, strictly increasing, never reused, even
 *   after the table empties or the process restarts.
 * - An eventId already in the outbox is not stored twice (a camera's retry collapses here).
 *   The ids waiting are kept in memory, not in a UNIQUE index: an index on random eventIds
 *   dirtied a random page per insert and per delete, which cost 40 % more CPU and wrote 4 KB
 *   to disk per event (docs/architecture.md, "Agent outbox"). Memory is bounded by
 *   `WAITING_IDS_KEPT` (`idsKept`): past it, a retry of one of the oldest waiting events is stored again
 *   and the processor's deduplication drops it.
 * - Bounded by events, bytes and age; when full either new events are refused (`reject`,
 *   the default) or the oldest are dropped (`drop-oldest`). Both are reported as events.
 *
 * Rows store the event without the agent's envelope fields; `seq` and `receivedAt` live in
 * their own columns and are spliced into the JSON when a batch is built.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { VcamError } from '../common/errors.js';

export type FullPolicy = 'reject' | 'drop-oldest';

export interface OutboxOptions {
  dataDir: string;
  agentId: string;
  maxEvents: number;
  maxBytes: number;
  /** Events older than this are expired (dropped and reported); 0 keeps them forever. */
  maxAgeMs: number;
  fullPolicy: FullPolicy;
  /** SQLite `synchronous`: `full` survives power loss, `normal` survives process crashes. */
  sync: 'full' | 'normal';
  /** Waiting eventIds remembered for collapsing retries; default WAITING_IDS_KEPT. */
  idsKept?: number;
}

export interface OutboxRow {
  seq: number;
  eventId: string;
  receivedAt: number;
  body: string;
  /** The body's size in UTF-8 bytes, as the outbox's byte bound counts it. */
  bytes: number;
}

/** What the publisher sent of a range of rows: their ids and bytes, so an ack need not read them back. */
export interface SentRows {
  ids: string[];
  bytes: number;
}

export interface Pending {
  eventId: string;
  receivedAt: number;
  /** The event as JSON, without agentId/seq/receivedAt. */
  body: string;
}

export interface AppendResult {
  /** Newly stored events. */
  stored: number;
  /** Events whose eventId was already waiting in the outbox. */
  duplicates: number;
}

/**
 * How many waiting eventIds are remembered for collapsing retries (about 100 bytes each). A
 * connected agent holds about a second of events; the bound matters only during long outages.
 */
export const WAITING_IDS_KEPT = 200_000;

const OUTBOX_COLUMNS = '(seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, received_at INTEGER NOT NULL, body TEXT NOT NULL)';

export interface OutboxEvents {
  appended: [count: number];
  dropped: [count: number, reason: 'overflow' | 'expired'];
}

interface Waiter {
  items: Pending[];
  bytes: number;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly selectAfter: Database.Statement;
  private readonly countRange: Database.Statement;
  private readonly deleteRange: Database.Statement;
  private readonly deleteRangeReturning: Database.Statement;
  private readonly dropOldest: Database.Statement;
  private readonly expire: Database.Statement;
  private readonly oldest: Database.Statement;
  private queue: Waiter[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  private flushScheduled = false;
  private closed = false;
  /** Kept in memory so bound checks cost nothing; loaded from the file at open. */
  private count = 0;
  private bytes = 0;
  /** The waiting events' ids, oldest first (a Set keeps insertion order). */
  private readonly waiting = new Set<string>();
  private readonly idsKept: number;

  constructor(readonly options: OutboxOptions) {
    super();
    mkdirSync(options.dataDir, { recursive: true });
    this.db = new Database(join(options.dataDir, 'outbox.sqlite'), { timeout: 1_000 });
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
      // One process per outbox: a second agent on the same directory would double-send.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.createSchema();
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      throw new VcamError('CONFIG_INVALID', `the outbox in ${options.dataDir} is in use by another agent process; stop it or use another --data-dir`, { cause: err });
    }
    this.claim(options.agentId);
    this.insert = this.db.prepare('INSERT INTO outbox (event_id, received_at, body) VALUES (?, ?, ?)');
    this.selectAfter = this.db.prepare('SELECT seq, event_id AS eventId, received_at AS receivedAt, body, length(CAST(body AS BLOB)) AS bytes FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?');
    const gone = 'RETURNING event_id AS id, length(CAST(body AS BLOB)) AS n';
    this.countRange = this.db.prepare('SELECT count(*) FROM outbox WHERE seq BETWEEN ? AND ?').pluck();
    const deleteRange = 'DELETE FROM outbox WHERE seq BETWEEN ? AND ?';
    this.deleteRange = this.db.prepare(deleteRange);
    this.deleteRangeReturning = this.db.prepare(`${deleteRange} ${gone}`);
    this.dropOldest = this.db.prepare(`DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?) ${gone}`);
    this.expire = this.db.prepare(`DELETE FROM outbox WHERE received_at < ? ${gone}`);
    this.oldest = this.db.prepare('SELECT received_at AS receivedAt FROM outbox ORDER BY seq LIMIT 1');
    const totals = this.db.prepare('SELECT count(*) AS c, coalesce(sum(length(CAST(body AS BLOB))), 0) AS b FROM outbox').get() as { c: number; b: number };
    this.count = totals.c;
    this.bytes = totals.b;
    this.idsKept = options.idsKept ?? WAITING_IDS_KEPT;
    const newest = this.db.prepare('SELECT event_id AS id FROM outbox ORDER BY seq DESC LIMIT ?').pluck().all(this.idsKept) as string[];
    for (let i = newest.length - 1; i >= 0; i--) this.waiting.add(newest[i]!);
  }

  private createSchema(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox ${OUTBOX_COLUMNS};`);
    this.dropUniqueIndex();
  }

  /**
   * Outboxes written before 2026-12-04 declared event_id UNIQUE, an index SQLite cannot drop in
   * place: the table is copied once into the current shape. The AUTOINCREMENT high-water mark
   * is carried over so that no seq is ever reused.
   */
  private dropUniqueIndex(): void {
    const indexes = this.db.prepare("SELECT name FROM pragma_index_list('outbox') WHERE origin = 'u'").all();
    if (indexes.length === 0) return;
    this.db.transaction(() => {
      const high = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").get() as { seq: number } | undefined;
      this.db.exec(`
        CREATE TABLE outbox_next ${OUTBOX_COLUMNS};
        INSERT INTO outbox_next SELECT seq, event_id, received_at, body FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_next RENAME TO outbox;`);
      if (high) this.db.prepare("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'outbox'").run(high.seq);
    })();
  }

  /** A data directory belongs to one agent id for life; mixing two would corrupt both sequences. */
  private claim(agentId: string): void {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'agentId'").get() as { value: string } | undefined;
    if (!row) this.db.prepare("INSERT INTO meta (key, value) VALUES ('agentId', ?)").run(agentId);
    else if (row.value !== agentId) {
      this.db.close();
      throw new VcamError('CONFIG_INVALID', `data directory ${this.options.dataDir} belongs to agent "${row.value}", not "${agentId}"; use another --data-dir or the same --id`);
    }
  }

  /** Resolves once the events are committed; rejects with OUTBOX_FULL under the reject policy. */
  append(items: Pending[]): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new VcamError('OUTBOX_CLOSED', 'the agent is shutting down; retry against the restarted agent', { retriable: true }));
    if (items.length === 0) return Promise.resolve({ stored: 0, duplicates: 0 });
    let bytes = 0;
    for (const it of items) bytes += Buffer.byteLength(it.body, 'utf8');
    if (this.options.fullPolicy === 'reject') {
      const events = this.count + this.queuedEvents + items.length;
      const total = this.bytes + this.queuedBytes + bytes;
      if (events > this.options.maxEvents || total > this.options.maxBytes) {
        return Promise.reject(new VcamError('OUTBOX_FULL', `the outbox is full (${this.count} events, ${this.bytes} bytes waiting for the broker); retry later`, { retriable: true }));
      }
    }
    this.queuedEvents += items.length;
    this.queuedBytes += bytes;
    return new Promise((resolve, reject) => {
      this.queue.push({ items, bytes, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const waiters = this.queue;
    this.queue = [];
    this.queuedEvents = 0;
    this.queuedBytes = 0;
    if (waiters.length === 0) return;
    const results: AppendResult[] = [];
    // Ids join `waiting` only once committed: a failed transaction stored none of them.
    const taken = new Set<string>();
    try {
      this.db.transaction(() => {
        for (const w of waiters) {
          const r = { stored: 0, duplicates: 0 };
          for (const it of w.items) {
            if (this.waiting.has(it.eventId) || taken.has(it.eventId)) {
              r.duplicates++;
              continue;
            }
            this.insert.run(it.eventId, it.receivedAt, it.body);
            taken.add(it.eventId);
            r.stored++;
            this.count++;
            this.bytes += Buffer.byteLength(it.body, 'utf8');
          }
          results.push(r);
        }
      })();
    } catch (err) {
      const totals = this.db.prepare('SELECT count(*) AS c, coalesce(sum(length(CAST(body AS BLOB))), 0) AS b FROM outbox').get() as { c: number; b: number };
      this.count = totals.c;
      this.bytes = totals.b;
      for (const w of waiters) w.reject(err as Error);
      return;
    }
    for (const id of taken) this.waiting.add(id);
    // Only when over the bound: iterating a Set from its start also walks its deleted entries.
    if (this.waiting.size > this.idsKept) {
      for (const id of this.waiting) {
        if (this.waiting.size <= this.idsKept) break;
        this.waiting.delete(id);
      }
    }
    waiters.forEach((w, i) => w.resolve(results[i]!));
    const stored = results.reduce((n, r) => n + r.stored, 0);
    if (this.options.fullPolicy === 'drop-oldest') this.enforceBounds();
    if (stored > 0) this.emit('appended', stored);
  }

  private enforceBounds(): void {
    const { maxEvents, maxBytes } = this.options;
    if (this.count <= maxEvents && this.bytes <= maxBytes) return;
    let dropped = 0;
    while (this.count > maxEvents || this.bytes > maxBytes) {
      const excess = Math.max(this.count - maxEvents, 1);
      const rows = this.dropOldest.all(excess) as { id: string; n: number }[];
      if (rows.length === 0) break;
      this.forget(rows);
      dropped += rows.length;
    }
    if (dropped > 0) this.emit('dropped', dropped, 'overflow');
  }

  /** Drops events older than maxAgeMs; returns how many. */
  expireOld(now = Date.now()): number {
    if (this.options.maxAgeMs <= 0 || this.closed) return 0;
    const rows = this.expire.all(now - this.options.maxAgeMs) as { id: string; n: number }[];
    this.forget(rows);
    if (rows.length > 0) this.emit('dropped', rows.length, 'expired');
    return rows.length;
  }

  private forget(rows: { id: string; n: number }[]): void {
    this.count -= rows.length;
    for (const r of rows) {
      this.bytes -= r.n;
      this.waiting.delete(r.id);
    }
  }

  /**
   * Up to `maxEvents` rows after `afterSeq`, in sequence order, read as they are consumed: a
   * caller that stops early (a batch full by bytes) never reads the rest.
   */
  rowsAfter(afterSeq: number, maxEvents: number): IterableIterator<OutboxRow> {
    return this.selectAfter.iterate(afterSeq, maxEvents) as IterableIterator<OutboxRow>;
  }

  peek(afterSeq: number, maxEvents: number): OutboxRow[] {
    return [...this.rowsAfter(afterSeq, maxEvents)];
  }

  /**
   * Removes the events a PUBACK covered; returns how many were still there (rows dropped or
   * expired meanwhile are simply absent). Given what was sent of the range, and all of it is
   * still there (the usual case), the rows are deleted without being read back: reading each
   * deleted row's id and size cost the publish path as much as the delete itself.
   */
  ack(firstSeq: number, lastSeq: number, sent?: SentRows): number {
    if (this.closed) return 0;
    if (sent && this.countRange.get(firstSeq, lastSeq) === sent.ids.length) {
      this.deleteRange.run(firstSeq, lastSeq);
      this.count -= sent.ids.length;
      this.bytes -= sent.bytes;
      for (const id of sent.ids) this.waiting.delete(id);
      return sent.ids.length;
    }
    const rows = this.deleteRangeReturning.all(firstSeq, lastSeq) as { id: string; n: number }[];
    this.forget(rows);
    return rows.length;
  }

  stats(now = Date.now()): { events: number; bytes: number; oldestAgeMs: number } {
    const oldest = this.closed || this.count === 0 ? undefined : (this.oldest.get() as { receivedAt: number } | undefined);
    return { events: this.count, bytes: this.bytes, oldestAgeMs: oldest ? Math.max(0, now - oldest.receivedAt) : 0 };
  }

  /** Commits whatever is queued, then closes the file. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
