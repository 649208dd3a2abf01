/**
 * The processor's reads and writes in ClickHouse. Every write of a chunk carries an
 * `insert_deduplication_token` derived from the chunk's parts (topic, and each partition's
 * offset range) and the table: writing the same chunk twice, in full or after a crash half-way,
 * leaves each table exactly as one write would.
 */
import { promisify } from 'node:util';
import { gzip, gunzip } from 'node:zlib';
import type { ClickHouseClient } from '@clickhouse/client';
import type { PipelineEvent } from '../common/contract.js';
import type { HotSet } from './dedup.js';
import type { ChunkResult } from './pipeline.js';
import { dt64 } from '../clickhouse/schema.js';

/**
 * A dead letter's text comes from the refused input (a field name, an agentId): JSON lets it hold
 * a lone surrogate ("\ud800"), which ClickHouse refuses in JSON input, failing the whole chunk on
 * every retry. Each one becomes U+FFFD, as a UTF-8 decoder would make it.
 */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

/** Events per cold look-up: at most about 450 KB of URL (200-character ids hex-encoded, and their timestamps), below ClickHouse's 1 MiB limit. */
const COLD_SLICE = 1_000;
const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface ChunkRange {
  start: bigint;
  end: bigint;
}

/** One partition's share of a chunk. A chunk spans every partition its processor had due. */
export interface ChunkPart {
  partition: number;
  range: ChunkRange;
}

/**
 * A chunk's rows exactly as inserted, one array of values per row in the order of COLUMNS.
 * They are kept with the chunk's record, so whoever next owns any of its partitions can replay
 * the chunk without its messages or the state before it.
 */
export interface ChunkRows {
  events: unknown[][];
  geo10s: unknown[][];
  geoType1m: unknown[][];
  device1m: unknown[][];
  dlq: unknown[][];
}

/**
 * Inserts name their columns and send rows as arrays (JSONCompactEachRow): ClickHouse parses
 * 15,000 event rows in ~65–95 ms that way against ~210–290 ms as JSON objects, and the
 * processor serialises them in half the time (docs/performance.md).
 */
const COLUMNS = {
  events: ['event_id', 'device_id', 'geo_id', 'geo_name', 'region', 'ts', 'type', 'late', 'confidence', 'attrs', 'agent_id', 'agent_seq', 'received_at', 'kafka_partition', 'kafka_offset', 'processed_at'],
  geo10s: ['bucket', 'geo_id', 'events', 'late'],
  geoType1m: ['bucket', 'geo_id', 'type', 'events', 'late'],
  device1m: ['bucket', 'device_id', 'geo_id', 'events', 'duplicates'],
  dlq: ['received_at', 'agent_id', 'reason', 'message', 'payload', 'kafka_partition', 'kafka_offset'],
};
const EVENT = Object.fromEntries(COLUMNS.events.map((c, i) => [c, i])) as Record<string, number>;

/** A partition's last recorded chunk: its range in that partition and the chunk's token. */
export interface RecordedChunk {
  range: ChunkRange;
  token: string;
  /** When it was recorded (ClickHouse's DateTime64 text), and the deduplication blocks its inserts add. */
  writtenAt?: string;
  blocks?: number;
}

/** The tables a chunk writes under deduplication tokens (vcam.dlq counts by identity, not by tokens). */
export const DEDUPLICATED_TABLES = ['vcam.events', 'vcam.geo_10s', 'vcam.geo_type_1m', 'vcam.device_1m'];

export class ProcessorStore {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly topic: string,
  ) {}

  /**
   * The chunk's identity, from its parts; the prefix of every insert's dedup token. A chunk of
   * one partition keeps the form chunks had before they spanned partitions.
   */
  token(parts: ChunkPart[]): string {
    return `${this.topic}:${parts.map((p) => `${p.partition}:${p.range.start}-${p.range.end}`).join(',')}`;
  }

  async lastChunk(partition: number): Promise<RecordedChunk | undefined> {
    const rows = await (
      await this.client.query({
        query:
          'SELECT toString(start_offset) AS s, toString(end_offset) AS e, token, toString(written_at) AS w, blocks FROM vcam.chunks FINAL WHERE topic = {topic:String} AND kafka_partition = {p:UInt16} ORDER BY start_offset DESC LIMIT 1',
        query_params: { topic: this.topic, p: partition },
        format: 'JSONEachRow',
      })
    ).json<{ s: string; e: string; token: string; w: string; blocks: number }>();
    const r = rows[0];
    if (!r) return undefined;
    const range = { start: BigInt(r.s), end: BigInt(r.e) };
    // Records from before chunks spanned partitions carry no token: theirs had this form.
    return { range, token: r.token || this.token([{ partition, range }]), writtenAt: r.w, blocks: Number(r.blocks) };
  }

  /**
   * How far back a replay of `chunk` reaches in the tables' deduplication logs: the blocks every
   * chunk recorded after it added (from a minute before, for clocks a little apart: more, never
   * fewer). Every insert into the deduplicated tables is a chunk's, recorded before its data.
   */
  async replayDistance(chunk: RecordedChunk): Promise<number> {
    const [row] = await (
      await this.client.query({
        query: `SELECT sum(b) AS n FROM (SELECT token, max(blocks) AS b FROM vcam.chunks
                WHERE written_at >= parseDateTime64BestEffort({w:String}, 3, 'UTC') - INTERVAL 1 MINUTE AND token != {t:String} GROUP BY token)`,
        query_params: { w: chunk.writtenAt ?? '1970-01-01 00:00:00', t: chunk.token },
        format: 'JSONEachRow',
      })
    ).json<{ n: string | number }>();
    return Number(row?.n ?? 0);
  }

  /** The smallest deduplication window of the tables a chunk writes, as ClickHouse has it now (an operator may change it). */
  async dedupWindow(): Promise<number> {
    const rows = await (
      await this.client.query({
        query: "SELECT concat(database, '.', name) AS t, engine_full AS e FROM system.tables WHERE concat(database, '.', name) IN {tables:Array(String)}",
        query_params: { tables: DEDUPLICATED_TABLES },
        format: 'JSONEachRow',
      })
    ).json<{ t: string; e: string }>();
    const windows = rows.map((r) => Number(/non_replicated_deduplication_window = (\d+)/.exec(r.e)?.[1] ?? 0));
    return windows.length < DEDUPLICATED_TABLES.length ? 0 : Math.min(...windows);
  }

  /** The rows recorded with a chunk, or undefined when they expired (or predate kept rows). */
  async recordedRows(token: string): Promise<ChunkRows | undefined> {
    const rows = await (
      await this.client.query({
        query: 'SELECT payload FROM vcam.chunk_rows WHERE token = {token:String} ORDER BY written_at DESC LIMIT 1',
        query_params: { token },
        format: 'JSONEachRow',
      })
    ).json<{ payload: string }>();
    return rows[0] ? (JSON.parse((await gunzipAsync(Buffer.from(rows[0].payload, 'base64'))).toString('utf8')) as ChunkRows) : undefined;
  }

  /**
   * Fills the hot set with what this partition counted before `before`: the latest event time
   * counted, then every id within the horizon below it, read from vcam.events through its
   * projection ordered by partition and time (migration 10). `notBefore` bounds the read.
   */
  async rebuildHot(partition: number, before: bigint, hot: HotSet, notBefore: number): Promise<void> {
    const params = { p: partition, before: before.toString(), notBefore: dt64(notBefore) };
    // Whatever this read finds or not, nothing older than notBefore is in the set.
    hot.coveredFrom = notBefore;
    const [top] = await (
      await this.client.query({
        query: 'SELECT toUnixTimestamp64Milli(max(ts)) AS m, count() AS n FROM vcam.events WHERE kafka_partition = {p:UInt16} AND kafka_offset < {before:UInt64} AND ts >= {notBefore:DateTime64(3)}',
        query_params: params,
        format: 'JSONEachRow',
      })
    ).json<{ m: number; n: number }>();
    if (!top || Number(top.n) === 0) return;
    const from = Math.max(Number(top.m) - hot.horizonMs, notBefore);
    const stream = (
      await this.client.query({
        query: 'SELECT event_id, toUnixTimestamp64Milli(ts) AS t FROM vcam.events WHERE kafka_partition = {p:UInt16} AND kafka_offset < {before:UInt64} AND ts >= {from:DateTime64(3)}',
        query_params: { ...params, from: dt64(from) },
        format: 'JSONCompactEachRow',
      })
    ).stream();
    for await (const rows of stream)
      for (const row of rows) {
        const [id, t] = row.json<[string, number]>();
        hot.load(id, Number(t));
      }
    hot.observe(Number(top.m));
  }

  /**
   * Which of these events each partition already counted before its offset `before` (the cold
   * tier), for all of a chunk's partitions in one look-up. The ids travel as query parameters in
   * the URL, so a long list is asked in slices.
   */
  async coldSeen(asks: { partition: number; before: bigint; events: PipelineEvent[] }[]): Promise<Map<number, Set<string>>> {
    const seen = new Map<number, Set<string>>(asks.map((a) => [a.partition, new Set()]));
    const all = asks.flatMap((a) => a.events);
    for (let i = 0; i < all.length; i += COLD_SLICE) {
      for (const r of await this.coldSlice(asks, all.slice(i, i + COLD_SLICE))) seen.get(r.p)?.add(r.event_id);
    }
    return seen;
  }

  private async coldSlice(asks: { partition: number; before: bigint }[], events: PipelineEvent[]): Promise<{ p: number; event_id: string }[]> {
    const rows = await (
      await this.client.query({
        // The ids travel hex-encoded: an eventId may hold any printable ASCII, and ClickHouse reads
        // backslashes and quotes in string query parameters inconsistently (ClickHouse issues
        // 68427, 69656): `x\'` failed the look-up, and so the chunk, on every retry.
        // The offset bound is ...OrZero: ClickHouse may evaluate it on rows of partitions not
        // asked about (indexOf 0, element ''), where toUInt64('') threw on the chaos run's data.
        // By (device, ts) pairs, the table's key: each id's own granules only. Matching the two
        // columns separately let every id's device select every other id's ts, and read about
        // twice the CPU (docs/performance.md, "The cold look-up"). One thread: these are point
        // reads, and on a busy host a second thread cost more CPU than the wait it saved.
        query: `SELECT DISTINCT kafka_partition AS p, event_id FROM vcam.events
                WHERE (device_id, ts) IN (SELECT arrayJoin(arrayZip({devices:Array(String)}, {tss:Array(DateTime64(3, 'UTC'))})))
                  AND event_id IN (SELECT unhex(arrayJoin({ids:Array(String)})))
                  AND kafka_partition IN {ps:Array(UInt16)}
                  AND kafka_offset < toUInt64OrZero(arrayElement({befores:Array(String)}, indexOf({ps:Array(UInt16)}, kafka_partition)))`,
        query_params: {
          // A duplicate carries its original's ts (the eventId is derived from it).
          devices: events.map((e) => e.deviceId),
          tss: events.map((e) => dt64(e.ts)),
          ids: events.map((e) => Buffer.from(e.eventId).toString('hex')),
          ps: asks.map((a) => a.partition),
          befores: asks.map((a) => a.before.toString()),
        },
        clickhouse_settings: { max_threads: 1 },
        format: 'JSONEachRow',
      })
    ).json<{ p: number; event_id: string }>();
    return rows.map((r) => ({ p: Number(r.p), event_id: r.event_id }));
  }

  /** The rows of a chunk's results as they are inserted (and kept with its record). */
  rows(results: ChunkResult[], now = Date.now()): ChunkRows {
    const processedAt = dt64(now);
    const rows: ChunkRows = { events: [], geo10s: [], geoType1m: [], device1m: [], dlq: [] };
    // Aggregate rows of different partitions may share a key: the tables sum them.
    for (const r of results) {
      for (const e of r.events) {
        rows.events.push([e.event_id, e.device_id, e.geo_id, e.geo_name, e.region, dt64(e.ts), e.type, e.late, e.confidence, e.attrs, e.agent_id, e.agent_seq, dt64(e.received_at), e.kafka_partition, e.kafka_offset, processedAt]);
      }
      for (const g of r.geo10s) rows.geo10s.push([g.bucket, g.geo_id, g.events, g.late]);
      for (const g of r.geoType1m) rows.geoType1m.push([g.bucket, g.geo_id, g.type, g.events, g.late]);
      for (const d of r.device1m) rows.device1m.push([d.bucket, d.device_id, d.geo_id, d.events, d.duplicates]);
      for (const d of r.dead) rows.dlq.push([dt64(d.received_at), wellFormed(d.agent_id), d.reason, wellFormed(d.message), wellFormed(d.payload), d.kafka_partition, d.kafka_offset]);
    }
    return rows;
  }

  /**
   * Records the chunk, its parts and its rows, before any of its data: whoever next owns one of
   * its partitions replays exactly these rows under the same tokens. The rows first: a record
   * is only ever found with its rows.
   */
  async recordChunk(token: string, parts: ChunkPart[], rows: ChunkRows): Promise<void> {
    const now = dt64(Date.now());
    // Compressed here, off the event loop: as plain JSON inside JSON, the rows cost ClickHouse
    // more to parse than the events insert itself (286 ms per 7 MB chunk, the largest statement).
    const payload = (await gzipAsync(JSON.stringify(rows), { level: 1 })).toString('base64');
    await this.client.insert({ table: 'vcam.chunk_rows', values: [{ token, payload, written_at: now }], format: 'JSONEachRow' });
    await this.client.insert({
      table: 'vcam.chunks',
      values: parts.map((p) => ({
        topic: this.topic,
        kafka_partition: p.partition,
        start_offset: p.range.start.toString(),
        end_offset: p.range.end.toString(),
        token,
        written_at: now,
        blocks: blocksOf(rows),
        // What the archiver checks vcam.events against before it copies the chunk (archive/ledger.ts).
        events: rows.events.reduce((n, e) => n + (e[EVENT.kafka_partition!] === p.partition ? 1 : 0), 0),
        processed_at: rows.events[0]?.[EVENT.processed_at!] ?? now,
      })),
      format: 'JSONEachRow',
    });
  }

  /** `beforeEach` may throw to stop between inserts (the chunk is then replayed under the same tokens). */
  async writeRows(token: string, rows: ChunkRows, beforeEach: () => void = () => undefined): Promise<void> {
    const insert = async (table: string, columns: string[], values: unknown[][]) => {
      if (values.length === 0) return;
      beforeEach();
      await this.client.insert({ table, columns: columns as [string, ...string[]], values, format: 'JSONCompactEachRow', clickhouse_settings: { insert_deduplication_token: `${token}:${table}` } });
    };
    await insert('vcam.events', COLUMNS.events, rows.events);
    await insert('vcam.geo_10s', COLUMNS.geo10s, rows.geo10s);
    await insert('vcam.geo_type_1m', COLUMNS.geoType1m, rows.geoType1m);
    await insert('vcam.device_1m', COLUMNS.device1m, rows.device1m);
    await insert('vcam.dlq', COLUMNS.dlq, rows.dlq);
  }
}

/** The deduplication-log entries a chunk's inserts add to one table, at most: vcam.events is partitioned by day. */
export function blocksOf(rows: ChunkRows): number {
  const days = new Set<number>();
  // ts is stored as dt64 text: seconds with three decimals.
  for (const e of rows.events) days.add(Math.floor(Number(e[EVENT.ts!]) / 86_400));
  return Math.max(1, days.size);
}
