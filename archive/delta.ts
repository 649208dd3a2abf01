/**
 * The Delta Lake transaction log, as much of the protocol (PROTOCOL.md) as an append-only,
 * date-partitioned archive needs: reader 1 / writer 2, `metaData`, `add` with protocol-shaped
 * stats, `remove` for retention, and `txn` for idempotent batches. No checkpoints: readers must
 * not assume any, and the log of one commit per batch stays small for the archive's retention.
 *
 * A commit is `_delta_log/<version>.json` written with put-if-absent: two writers, or a retry of
 * a commit that did land, can never both take a version. Whether a batch is in the table is
 * answered by the log alone (`txn[appId] >= batch`), never by vcam's own records.
 */
import { randomUUID } from 'node:crypto';
import { VcamError } from '../common/errors.js';
import type { ObjectStore } from '../common/objectstore.js';

export const LOG_DIR = '_delta_log';

export interface Field {
  name: string;
  type: 'string' | 'long' | 'integer' | 'float' | 'double' | 'boolean' | 'timestamp' | 'date';
  nullable: boolean;
}

export interface TableSchema {
  fields: Field[];
  partitionColumns: string[];
}

export interface AddAction {
  path: string;
  partitionValues: Record<string, string>;
  size: number;
  modificationTime: number;
  dataChange: boolean;
  stats?: string;
}

interface RemoveAction {
  path: string;
  deletionTimestamp: number;
  dataChange: boolean;
  partitionValues?: Record<string, string>;
  size?: number;
  extendedFileMetadata?: boolean;
}

interface MetaData {
  id: string;
  schemaString: string;
  partitionColumns: string[];
  configuration: Record<string, string>;
}

type Action =
  | { commitInfo: Record<string, unknown> }
  | { protocol: { minReaderVersion: number; minWriterVersion: number } }
  | { metaData: MetaData & { format: { provider: 'parquet'; options: Record<string, never> }; createdTime: number } }
  | { txn: { appId: string; version: number; lastUpdated: number } }
  | { add: AddAction }
  | { remove: RemoveAction };

/** The table as of one version: what a reader sees. */
export interface Snapshot {
  version: number;
  tableId: string;
  schema: TableSchema;
  txn: Map<string, number>;
  /** Live data files by path. */
  files: Map<string, AddAction>;
  /** Files removed (by retention), with when: what a vacuum may delete once old enough. */
  removed: Map<string, number>;
}

export class ArchiveError extends VcamError {
  constructor(message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super('UNAVAILABLE', message, opts);
    this.name = 'ArchiveError';
  }
}

const versionKey = (v: number) => `${LOG_DIR}/${String(v).padStart(20, '0')}.json`;

/** Spark's JSON schema, as Delta keeps it in `schemaString`. */
export function schemaString(s: TableSchema): string {
  return JSON.stringify({ type: 'struct', fields: s.fields.map((f) => ({ name: f.name, type: f.type, nullable: f.nullable, metadata: {} })) });
}

function parseSchema(m: MetaData): TableSchema {
  const parsed = JSON.parse(m.schemaString) as { fields: { name: string; type: unknown; nullable: boolean }[] };
  return { fields: parsed.fields.map((f) => ({ name: f.name, type: f.type as Field['type'], nullable: f.nullable })), partitionColumns: m.partitionColumns };
}

/** How two schemas differ, in words; empty when they are the same. */
export function schemaDifference(have: TableSchema, want: TableSchema): string[] {
  const out: string[] = [];
  const byName = new Map(have.fields.map((f) => [f.name, f]));
  for (const f of want.fields) {
    const h = byName.get(f.name);
    if (!h) out.push(`column ${f.name} (${f.type}) is missing`);
    else if (h.type !== f.type || h.nullable !== f.nullable) out.push(`column ${f.name} is ${h.type}${h.nullable ? ' null' : ''}, expected ${f.type}${f.nullable ? ' null' : ''}`);
    byName.delete(f.name);
  }
  for (const h of byName.values()) out.push(`column ${h.name} (${h.type}) is not in vcam's schema`);
  if (have.partitionColumns.join(',') !== want.partitionColumns.join(',')) out.push(`partitioned by [${have.partitionColumns.join(', ')}], expected [${want.partitionColumns.join(', ')}]`);
  return out;
}

/**
 * Reads and follows one table's log. It keeps the snapshot it last read and reads only newer
 * versions after that, so a long-running archiver does not re-read the whole log each batch.
 */
export class DeltaLog {
  private snap: Snapshot | undefined;

  constructor(
    readonly store: ObjectStore,
    private readonly engineInfo = 'vcam',
  ) {}

  /** The latest snapshot, or undefined when the table has no commit yet. */
  async snapshot(): Promise<Snapshot | undefined> {
    let next = this.snap ? this.snap.version + 1 : 0;
    if (!this.snap) {
      const versions = (await this.store.list(`${LOG_DIR}/`)).map((o) => /^_delta_log\/(\d{20})\.json$/.exec(o.key)?.[1]).filter((v): v is string => v !== undefined);
      if (versions.length === 0) return undefined;
      if (Number(versions[0]) !== 0) throw new ArchiveError(`${this.store.url}: the Delta log starts at version ${Number(versions[0])}, and vcam writes no checkpoints: the log was truncated by something else`);
    }
    for (;;) {
      const body = await this.store.get(versionKey(next));
      if (!body) break;
      this.snap = apply(this.snap, next, body.toString('utf8'), this.store.url);
      next++;
    }
    return this.snap;
  }

  /** Creates the table (version 0: protocol and metadata) if it has no commit; returns the snapshot either way. */
  async create(schema: TableSchema, configuration: Record<string, string> = {}): Promise<Snapshot> {
    const existing = await this.snapshot();
    if (existing) return existing;
    const now = Date.now();
    const actions: Action[] = [
      { commitInfo: { timestamp: now, operation: 'CREATE TABLE', operationParameters: { partitionBy: JSON.stringify(schema.partitionColumns) }, engineInfo: this.engineInfo } },
      { protocol: { minReaderVersion: 1, minWriterVersion: 2 } },
      {
        metaData: {
          id: randomUUID(),
          format: { provider: 'parquet', options: {} },
          schemaString: schemaString(schema),
          partitionColumns: schema.partitionColumns,
          configuration,
          createdTime: now,
        },
      },
    ];
    // Another writer creating it at the same moment wins or loses as a whole; either way, read it.
    await this.store.putIfAbsent(versionKey(0), encode(actions));
    const snap = await this.snapshot();
    if (!snap) throw new ArchiveError(`${this.store.url}: version 0 of the Delta log was written but cannot be read back`, { retriable: true });
    return snap;
  }

  /**
   * Commits `adds` as batch `batch` of application `appId`, exactly once: if the log already
   * holds that batch (a retry of a commit that landed, whose answer was lost), nothing is
   * written. Returns the version it wrote, or the latest one when the batch was already there.
   */
  async commitBatch(appId: string, batch: number, adds: AddAction[], info: Record<string, unknown> = {}): Promise<{ version: number; written: boolean }> {
    for (;;) {
      const snap = await this.snapshot();
      if (!snap) throw new ArchiveError(`${this.store.url}: no Delta table to commit to`);
      if ((snap.txn.get(appId) ?? -1) >= batch) return { version: snap.version, written: false };
      const now = Date.now();
      const actions: Action[] = [
        { commitInfo: { timestamp: now, operation: 'WRITE', operationParameters: { mode: 'Append' }, engineInfo: this.engineInfo, ...info } },
        { txn: { appId, version: batch, lastUpdated: now } },
        ...adds.map((add) => ({ add })),
      ];
      if (await this.store.putIfAbsent(versionKey(snap.version + 1), encode(actions))) {
        await this.snapshot();
        return { version: snap.version + 1, written: true };
      }
      // Someone took that version (another writer, or our own earlier attempt): read it and decide again.
    }
  }

  /** Removes live files (retention). Files already gone are skipped, so a retried removal is a no-op. */
  async remove(paths: string[], info: Record<string, unknown> = {}): Promise<number | undefined> {
    for (;;) {
      const snap = await this.snapshot();
      if (!snap) return undefined;
      const live = paths.map((p) => snap.files.get(p)).filter((a): a is AddAction => a !== undefined);
      if (live.length === 0) return undefined;
      const now = Date.now();
      const actions: Action[] = [
        { commitInfo: { timestamp: now, operation: 'DELETE', engineInfo: this.engineInfo, ...info } },
        ...live.map((a) => ({ remove: { path: a.path, deletionTimestamp: now, dataChange: true, extendedFileMetadata: true, partitionValues: a.partitionValues, size: a.size } })),
      ];
      if (await this.store.putIfAbsent(versionKey(snap.version + 1), encode(actions))) {
        await this.snapshot();
        return snap.version + 1;
      }
    }
  }
}

const encode = (actions: Action[]) => Buffer.from(actions.map((a) => JSON.stringify(a)).join('\n') + '\n');

function apply(prev: Snapshot | undefined, version: number, text: string, url: string): Snapshot {
  const snap: Snapshot = prev
    ? { ...prev, version, txn: new Map(prev.txn), files: new Map(prev.files), removed: new Map(prev.removed) }
    : { version, tableId: '', schema: { fields: [], partitionColumns: [] }, txn: new Map(), files: new Map(), removed: new Map() };
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let action: Record<string, unknown>;
    try {
      action = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new ArchiveError(`${url}: version ${version} of the Delta log is not JSON lines: ${line.slice(0, 80)}`);
    }
    if ('protocol' in action) {
      const p = action.protocol as { minReaderVersion: number; minWriterVersion: number };
      if (p.minReaderVersion > 1 || p.minWriterVersion > 2) throw new ArchiveError(`${url}: the table needs Delta reader ${p.minReaderVersion} / writer ${p.minWriterVersion}; vcam writes 1 / 2 only`);
    } else if ('metaData' in action) {
      const m = action.metaData as MetaData;
      snap.tableId = m.id;
      snap.schema = parseSchema(m);
    } else if ('txn' in action) {
      const t = action.txn as { appId: string; version: number };
      snap.txn.set(t.appId, t.version);
    } else if ('add' in action) {
      const a = action.add as AddAction;
      snap.files.set(a.path, a);
      snap.removed.delete(a.path);
    } else if ('remove' in action) {
      const r = action.remove as RemoveAction;
      snap.files.delete(r.path);
      snap.removed.set(r.path, r.deletionTimestamp ?? 0);
    }
  }
  return snap;
}
