/**
 * The archive's view of ClickHouse: which chunks the processors wrote, which of them are whole
 * in `vcam.events`, and which chunks each archive batch holds.
 *
 * The unit is the processor's chunk, because exactly-once is already proven per chunk there:
 * a chunk's events rows are written under one insert token and replayed under the same one, all
 * with the chunk's own `processed_at`. So a chunk's rows of partition p are exactly the rows of
 * vcam.events with that processed_at and kafka_partition, and the chunk is complete when they
 * number what its record says (`vcam.chunks.events`). Counting, not waiting, decides: no clock
 * margin, and a chunk whose insert is cut short is simply not complete until its replay.
 */
import { TupleParam, type ClickHouseClient } from '@clickhouse/client';
import { CHUNK_RECORDS_KEPT_MS, dt64, notInArchive } from '../clickhouse/schema.js';

export interface ChunkPart {
  partition: number;
  events: number;
}

export interface ArchiveChunk {
  token: string;
  /** The chunk's processed_at, epoch ms: the same in every row it wrote. */
  processedMs: number;
  /** When its record was written, epoch ms (ReplacingMergeTree keeps the latest). */
  writtenMs: number;
  parts: ChunkPart[];
}

/**
 * Chunk records of different processors carry their own clocks, and a record's time is taken
 * before its insert: a new record may read older than one seen before, by this much at most.
 */
const RECORD_SKEW_MS = 10 * 60_000;

export const eventsOf = (c: ArchiveChunk) => c.parts.reduce((n, p) => n + p.events, 0);

/** The rows of vcam.events that a batch's chunks wrote: a WHERE clause and its parameters. */
export function chunkRowsFilter(chunks: ArchiveChunk[]): { where: string; params: Record<string, unknown> } {
  const ms = chunks.map((c) => c.processedMs);
  return {
    // The range lets the minmax index skip every part outside it; the pairs pick the rows.
    where: `processed_at >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') AND processed_at <= fromUnixTimestamp64Milli({hi:Int64}, 'UTC')
            AND (toUnixTimestamp64Milli(processed_at), kafka_partition) IN {pairs:Array(Tuple(Int64, UInt16))}`,
    params: { lo: Math.min(...ms), hi: Math.max(...ms), pairs: chunks.flatMap((c) => c.parts.map((p) => new TupleParam([c.processedMs, p.partition]))) },
  };
}

export class Ledger {
  /** Where the next look for unplanned chunks starts (written_at), moved on as batches commit. */
  private since = 0;

  constructor(
    private readonly client: ClickHouseClient,
    /** The Delta table's id: plans of different archives of one ClickHouse never mix. */
    readonly archive: string,
  ) {}

  /** Chunks with events that no batch of this archive holds, oldest first. */
  async unplanned(limit: number, now = Date.now()): Promise<ArchiveChunk[]> {
    const since = Math.max(this.since, now - CHUNK_RECORDS_KEPT_MS);
    const rows = await (
      await this.client.query({
        query: `SELECT token, toUnixTimestamp64Milli(any(processed_at)) AS pms, toUnixTimestamp64Milli(max(written_at)) AS wms, groupArray((kafka_partition, events)) AS parts
                FROM vcam.chunks FINAL
                WHERE events > 0 AND written_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
                  AND ${notInArchive("planned_at >= fromUnixTimestamp64Milli({plannedSince:Int64}, 'UTC')")}
                GROUP BY token ORDER BY wms, token LIMIT {limit:UInt32}`,
        query_params: { since, a: this.archive, plannedSince: since - 86_400_000, limit },
        format: 'JSONEachRow',
      })
    ).json<{ token: string; pms: string | number; wms: string | number; parts: [number, number][] }>();
    return rows.map((r) => ({ token: r.token, processedMs: Number(r.pms), writtenMs: Number(r.wms), parts: r.parts.map(([partition, events]) => ({ partition: Number(partition), events: Number(events) })) }));
  }

  /** Those of `chunks` whose rows are all in vcam.events. */
  async complete(chunks: ArchiveChunk[]): Promise<ArchiveChunk[]> {
    if (chunks.length === 0) return [];
    const { where, params } = chunkRowsFilter(chunks);
    const rows = await (
      await this.client.query({
        query: `SELECT toUnixTimestamp64Milli(processed_at) AS pms, kafka_partition AS p, count() AS n FROM vcam.events WHERE ${where} GROUP BY pms, p`,
        query_params: params,
        format: 'JSONEachRow',
      })
    ).json<{ pms: string | number; p: number; n: string | number }>();
    const found = new Map(rows.map((r) => [`${r.pms}:${r.p}`, Number(r.n)]));
    return chunks.filter((c) => c.parts.every((p) => found.get(`${c.processedMs}:${p.partition}`) === p.events));
  }

  /**
   * When the oldest chunk not in a batch up to `committed` was recorded (epoch ms), from
   * ClickHouse alone: the lag while the table's store cannot be reached.
   */
  async oldestUnarchived(committed: number, now = Date.now()): Promise<number | undefined> {
    const since = Math.max(this.since, now - CHUNK_RECORDS_KEPT_MS);
    const [row] = await (
      await this.client.query({
        query: `SELECT toUnixTimestamp64Milli(min(written_at)) AS w, count() AS n FROM vcam.chunks FINAL
                WHERE events > 0 AND written_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
                  AND ${notInArchive('batch <= {committed:UInt64}')}`,
        query_params: { since, a: this.archive, committed },
        format: 'JSONEachRow',
      })
    ).json<{ w: string | number; n: string | number }>();
    return Number(row?.n ?? 0) > 0 ? Number(row!.w) : undefined;
  }

  /** The highest batch planned for this archive, or 0. */
  async lastPlanned(): Promise<number> {
    const [row] = await (await this.client.query({ query: 'SELECT max(batch) AS b FROM vcam.archive_chunks WHERE archive = {a:String}', query_params: { a: this.archive }, format: 'JSONEachRow' })).json<{ b: string | number }>();
    return Number(row?.b ?? 0);
  }

  /**
   * Records `chunks` as batch `batch` and returns the batch as recorded. A plan is one insert
   * (one block: all of it or nothing) under a token of its own, and is read back: if an earlier
   * attempt's insert landed unseen, that plan stands and is the one written.
   */
  async plan(batch: number, chunks: ArchiveChunk[], now = Date.now()): Promise<ArchiveChunk[]> {
    const existing = await this.planOf(batch);
    if (existing.length) return existing;
    await this.client.insert({
      table: 'vcam.archive_chunks',
      values: chunks.flatMap((c) =>
        c.parts.map((p) => ({ archive: this.archive, batch, token: c.token, kafka_partition: p.partition, processed_at: dt64(c.processedMs), events: p.events, written_at: dt64(c.writtenMs), planned_at: dt64(now) })),
      ),
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: `archive:${this.archive}:${batch}` },
    });
    return this.planOf(batch);
  }

  async planOf(batch: number): Promise<ArchiveChunk[]> {
    const rows = await (
      await this.client.query({
        query: `SELECT token, toUnixTimestamp64Milli(any(processed_at)) AS pms, toUnixTimestamp64Milli(max(written_at)) AS wms, groupArray((kafka_partition, events)) AS parts
                FROM vcam.archive_chunks WHERE archive = {a:String} AND batch = {b:UInt64} GROUP BY token ORDER BY token`,
        query_params: { a: this.archive, b: batch },
        format: 'JSONEachRow',
      })
    ).json<{ token: string; pms: string | number; wms: string | number; parts: [number, number][] }>();
    return rows.map((r) => ({ token: r.token, processedMs: Number(r.pms), writtenMs: Number(r.wms), parts: r.parts.map(([partition, events]) => ({ partition: Number(partition), events: Number(events) })) }));
  }

  /** Notes a committed batch (for lag, metrics and the console; the Delta log is what decides). */
  async committed(b: { batch: number; version: number; rows: number; files: number; bytes: number; oldestWrittenMs: number }, now = Date.now()): Promise<void> {
    await this.client.insert({
      table: 'vcam.archive_batches',
      values: [{ archive: this.archive, batch: b.batch, version: b.version, rows: b.rows, files: b.files, bytes: b.bytes, oldest_written_at: dt64(b.oldestWrittenMs), committed_at: dt64(now) }],
      format: 'JSONEachRow',
    });
  }

  async hasRecord(batch: number): Promise<boolean> {
    const rows = await (await this.client.query({ query: 'SELECT 1 FROM vcam.archive_batches WHERE archive = {a:String} AND batch = {b:UInt64} LIMIT 1', query_params: { a: this.archive, b: batch }, format: 'JSONEachRow' })).json();
    return rows.length > 0;
  }

  /**
   * No unplanned chunk was recorded before `writtenMs` (the oldest one left, or the time of a
   * look that found them all): later looks start there, less the clock skew between processors.
   */
  advance(writtenMs: number): void {
    this.since = Math.max(this.since, writtenMs - RECORD_SKEW_MS);
  }
}
