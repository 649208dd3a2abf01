/**
 * The processor's reads and writes in ClickHouse. Every write of a chunk carries an
 * `insert_deduplication_token` derived from (topic, partition, first offset, end offset,
 * table): writing the same chunk twice, in full or after a crash half-way, leaves each
 * table exactly as one write would.
 */
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

/** Events per cold look-up: at most about 410 KB of URL (200-character ids, hex-encoded), below ClickHouse's 1 MiB limit. */
const COLD_SLICE = 1_000;

export interface ChunkRange {
  start: bigint;
  end: bigint;
}


export class ProcessorStore {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly topic: string,
  ) {}

  async lastChunk(partition: number): Promise<ChunkRange | undefined> {
    const rows = await (
      await this.client.query({
        query: 'SELECT toString(start_offset) AS s, toString(end_offset) AS e FROM vcam.chunks FINAL WHERE topic = {topic:String} AND kafka_partition = {p:UInt16} ORDER BY start_offset DESC LIMIT 1',
        query_params: { topic: this.topic, p: partition },
        format: 'JSONEachRow',
      })
    ).json<{ s: string; e: string }>();
    return rows[0] ? { start: BigInt(rows[0].s), end: BigInt(rows[0].e) } : undefined;
  }

  /**
   * Fills the hot set with what this partition counted before `before`: the latest event time
   * counted, then every id within the horizon below it. `notBefore` keeps the read inside what
   * the dedup log still holds (its rows expire after two days).
   */
  async rebuildHot(partition: number, before: bigint, hot: HotSet, notBefore: number): Promise<void> {
    const params = { p: partition, before: before.toString(), notBefore: dt64(notBefore) };
    // Whatever this read finds or not, nothing older than notBefore is in the set.
    hot.coveredFrom = notBefore;
    const [top] = await (
      await this.client.query({
        query: 'SELECT toUnixTimestamp64Milli(max(ts)) AS m, count() AS n FROM vcam.dedup_log WHERE kafka_partition = {p:UInt16} AND kafka_offset < {before:UInt64} AND ts >= {notBefore:DateTime64(3)}',
        query_params: params,
        format: 'JSONEachRow',
      })
    ).json<{ m: number; n: number }>();
    if (!top || Number(top.n) === 0) return;
    const from = Math.max(Number(top.m) - hot.horizonMs, notBefore);
    const stream = (
      await this.client.query({
        query: 'SELECT event_id, toUnixTimestamp64Milli(ts) AS t FROM vcam.dedup_log WHERE kafka_partition = {p:UInt16} AND kafka_offset < {before:UInt64} AND ts >= {from:DateTime64(3)}',
        query_params: { ...params, from: dt64(from) },
        format: 'JSONCompactEachRow',
      })
    ).stream();
    for await (const rows of stream) for (const row of rows) {
      const [id, t] = row.json<[string, number]>();
      hot.add(id, Number(t));
    }
    hot.observe(Number(top.m));
  }

  /**
   * Which of these events this partition already counted before `before` (the cold tier). The
   * ids travel as query parameters in the URL, so a long list is asked in slices.
   */
  async coldSeen(partition: number, before: bigint, events: PipelineEvent[]): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < events.length; i += COLD_SLICE) for (const id of await this.coldSlice(partition, before, events.slice(i, i + COLD_SLICE))) seen.add(id);
    return seen;
  }

  private async coldSlice(partition: number, before: bigint, events: PipelineEvent[]): Promise<string[]> {
    const rows = await (
      await this.client.query({
        // The ids travel hex-encoded: an eventId may hold any printable ASCII, and ClickHouse reads
        // backslashes and quotes in string query parameters inconsistently (ClickHouse issues
        // 68427, 69656): `x\'` failed the look-up, and so the chunk, on every retry.
        query: `SELECT DISTINCT event_id FROM vcam.events
                WHERE device_id IN {devices:Array(String)} AND event_id IN (SELECT unhex(arrayJoin({ids:Array(String)})))
                  AND kafka_partition = {p:UInt16} AND kafka_offset < {before:UInt64}`,
        query_params: { devices: [...new Set(events.map((e) => e.deviceId))], ids: events.map((e) => Buffer.from(e.eventId).toString('hex')), p: partition, before: before.toString() },
        format: 'JSONEachRow',
      })
    ).json<{ event_id: string }>();
    return rows.map((r) => r.event_id);
  }

  /** Records the chunk's range before any of its data, so a restart knows exactly what to redo. */
  async recordChunk(partition: number, range: ChunkRange): Promise<void> {
    await this.client.insert({
      table: 'vcam.chunks',
      values: [{ topic: this.topic, kafka_partition: partition, start_offset: range.start.toString(), end_offset: range.end.toString(), written_at: dt64(Date.now()) }],
      format: 'JSONEachRow',
    });
  }

  /** `beforeEach` may throw to stop between inserts (the chunk is then redone under the same tokens). */
  async writeChunk(partition: number, range: ChunkRange, r: ChunkResult, beforeEach: () => void = () => undefined): Promise<void> {
    const token = `${this.topic}:${partition}:${range.start}-${range.end}`;
    const insert = async (table: string, values: object[]) => {
      if (values.length === 0) return;
      beforeEach();
      await this.client.insert({ table, values, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: `${token}:${table}` } });
    };
    const now = dt64(Date.now());
    await insert('vcam.events', r.events.map((e) => ({ ...e, ts: dt64(e.ts), received_at: dt64(e.received_at), processed_at: now })));
    await insert('vcam.dedup_log', r.events.map((e) => ({ kafka_partition: partition, kafka_offset: e.kafka_offset, ts: dt64(e.ts), event_id: e.event_id })));
    await insert('vcam.geo_10s', [...r.geo10s.values()]);
    await insert('vcam.geo_type_1m', [...r.geoType1m.values()]);
    await insert('vcam.device_1m', [...r.device1m.values()]);
    await insert('vcam.dlq', r.dead.map((d) => ({ ...d, agent_id: wellFormed(d.agent_id), message: wellFormed(d.message), payload: wellFormed(d.payload), received_at: dt64(d.received_at) })));
  }
}
