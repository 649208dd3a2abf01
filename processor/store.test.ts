/**
 * The processor's ClickHouse side against the real engine: the cold tier's look-up at the size a
 * lagging chunk produces, the hot set rebuilt from vcam.events, and a chunk write that loses its
 * partition half-way.
 */
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64 } from '../clickhouse/schema.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { pipelineEvents } from '../test/helpers/events.js';
import type { PipelineEvent } from '../common/contract.js';
import { HotSet } from './dedup.js';
import { GeoTable } from './geo.js';
import { ProcessorStore } from './store.js';
import { ChunkWriter, STALE } from './writer.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(() => ch?.stop());

/** A `vcam.events` row for a pipeline event, counted at this partition and offset. */
const eventRow = (e: ReturnType<typeof pipelineEvents>[number], kafka_partition: number, kafka_offset: number) => ({
  event_id: e.eventId,
  device_id: e.deviceId,
  geo_id: e.geoId,
  ts: dt64(e.ts),
  type: e.type,
  agent_id: 'gw',
  received_at: dt64(e.receivedAt),
  processed_at: dt64(e.receivedAt),
  kafka_partition,
  kafka_offset,
});

describe('ProcessorStore.coldSeen', () => {
  it('answers for 20,000 events at once (1.5 MB of ids, beyond the 1 MiB a URL may hold) with exactly those counted before the offset', async () => {
    const events = pipelineEvents(20_000, { prefix: `a-long-camera-supplied-event-identifier-` });
    // Every third event was counted earlier in this partition, one more at a later offset.
    const counted = events.filter((_, i) => i % 3 === 0);
    await ch.client.insert({
      table: 'vcam.events',
      values: counted.map((e, i) => eventRow(e, 3, i === 0 ? 99_999 : i)),
      format: 'JSONEachRow',
    });
    // Partition 4 asks for the same ids in one look-up: it counted none of them.
    const answer = await new ProcessorStore(ch.client, 'vcam.events').coldSeen([
      { partition: 3, before: 20_000n, events },
      { partition: 4, before: 200_000n, events: counted.slice(0, 100) },
    ]);
    expect(answer.get(4)!.size).toBe(0);
    const seen = answer.get(3)!;
    expect(seen.size).toBe(counted.length - 1);
    expect(seen.has(counted[1]!.eventId)).toBe(true);
    expect(seen.has(counted[0]!.eventId)).toBe(false);
    expect(seen.has(events[1]!.eventId)).toBe(false);
  });

  it("reads only the days of the events' own timestamps (a duplicate has its original's ts), not the device's whole retention", async () => {
    // One device with 1,000 events a day for 30 days; a late event from 20 days ago is looked up.
    const day = 86_400_000;
    const start = Math.floor(Date.now() / day) * day - 29 * day;
    const rows = Array.from({ length: 30_000 }, (_, i) => {
      const ts = start + Math.floor(i / 1_000) * day + (i % 1_000) * 1_000;
      return { event_id: `bounded-${i}`, device_id: 'cam-bounded', geo_id: 1, ts: dt64(ts), type: 'person', agent_id: 'gw', received_at: dt64(ts), processed_at: dt64(ts), kafka_partition: 5, kafka_offset: i };
    });
    await ch.client.insert({ table: 'vcam.events', values: rows, format: 'JSONEachRow' });
    const [late] = pipelineEvents(1, { prefix: 'bounded-' });
    const event = { ...late!, eventId: 'bounded-9500', deviceId: 'cam-bounded', ts: start + 9 * day + 500 * 1_000 };
    // ClickHouse refuses a query that reads more rows than this: the one day's 1,000 (one part, one granule) fit, the device's 30 days do not.
    const bounded = createClient({ url: ch.url, password: ch.password, clickhouse_settings: { max_rows_to_read: '2000', read_overflow_mode: 'throw' } });
    try {
      const answer = await new ProcessorStore(bounded, 'vcam.events').coldSeen([{ partition: 5, before: 1_000_000n, events: [event] }]);
      expect([...answer.get(5)!]).toEqual(['bounded-9500']);
    } finally {
      await bounded.close();
    }
  });

  /** 16 devices with an event every 100 ms at the same instants, 40,960 each (five granules), counted at `partition`. */
  async function grid(prefix: string, partition: number): Promise<{ start: number; ask: (d: number, granule: number, id?: string) => PipelineEvent }> {
    const day = 86_400_000;
    const start = Math.floor(Date.now() / day) * day - 2 * day + 3_600_000;
    await ch.client.command({
      query: `INSERT INTO vcam.events (event_id, device_id, geo_id, ts, type, agent_id, received_at, processed_at, kafka_partition, kafka_offset)
        SELECT concat('${prefix}-', toString(number)), concat('cam-${prefix}-', toString(intDiv(number, 40960))), 1,
          fromUnixTimestamp64Milli(toInt64(${start} + (number % 40960) * 100), 'UTC') AS t, 'person', 'gw', t, t, ${partition}, number
        FROM numbers(16 * 40960)`,
    });
    const [template] = pipelineEvents(1);
    return {
      start,
      ask: (d, granule, id) => {
        const k = granule * 8192 + 100;
        return { ...template!, eventId: id ?? `${prefix}-${d * 40960 + k}`, deviceId: `cam-${prefix}-${d}`, ts: start + k * 100 };
      },
    };
  }

  /** coldSeen through a client that refuses to read more rows than `granules` granules. */
  async function boundedColdSeen(granules: number, partition: number, events: PipelineEvent[]): Promise<string[]> {
    const bounded = createClient({ url: ch.url, password: ch.password, clickhouse_settings: { max_rows_to_read: String(granules * 8192), read_overflow_mode: 'throw' } });
    try {
      return [...(await new ProcessorStore(bounded, 'vcam.events').coldSeen([{ partition, before: 1_000_000n, events }])).get(partition)!].sort();
    } finally {
      await bounded.close();
    }
  }

  it("reads each id's own (device, ts) granules, not every asked device's rows at every asked ts", async () => {
    const { ask } = await grid('pair', 40);
    // Device d asks about its event in granule d % 5: together the asks name every granule's instants.
    const asked = Array.from({ length: 16 }, (_, d) => ask(d, d % 5));
    // Its own granule for each (16 × 8,192 rows) fits; each device's granules at all asked instants (80 × 8,192) do not.
    expect(await boundedColdSeen(32, 40, asked)).toEqual(asked.map((e) => e.eventId).sort());
  });

  it('skips the granules of ids never counted (the bloom filter of vcam.events), reading only the counted ones', async () => {
    const { ask } = await grid('bloom', 41);
    // 16 ids at instants where their devices did count events, but never counted themselves, and 2 counted ones.
    const fresh = Array.from({ length: 16 }, (_, d) => ask(d, d % 5, `bloom-never-${d}`));
    const counted = [ask(3, 1), ask(9, 4)];
    expect(await boundedColdSeen(4, 41, [...fresh, ...counted])).toEqual(counted.map((e) => e.eventId).sort());
  });

  it('answers only for the partitions asked about, whatever the other partitions counted of the same ids', async () => {
    // A processor owns some partitions; rows of the others match the same devices and ids. On the
    // 64-partition chaos run's data (2.6 M rows) ClickHouse evaluated the offset bound on those
    // rows too, and its toUInt64('') failed the look-up, and so the chunk, on every retry; this
    // small table does not make ClickHouse evaluate it there, so this checks the answer only.
    const events = pipelineEvents(2_000, { prefix: 'other-partitions-' });
    await ch.client.insert({
      table: 'vcam.events',
      values: [10, 11, 13].flatMap((p) => events.map((e, i) => eventRow(e, p, i))),
      format: 'JSONEachRow',
    });
    const answer = await new ProcessorStore(ch.client, 'vcam.events').coldSeen([
      { partition: 12, before: 1_000n, events },
      { partition: 14, before: 1_000n, events: [] },
    ]);
    expect(answer.get(12)!.size).toBe(0);
  });
});

describe('ProcessorStore.rebuildHot', () => {
  it("holds exactly the partition's ids below the offset within the horizon, read through the projection and not the whole table", async () => {
    // 8 partitions of 10,000 events, one every 300 ms of event time (50 minutes), in one part.
    const start = Date.now() - 3_600_000;
    const rows = Array.from({ length: 80_000 }, (_, i) => {
      const p = 30 + (i % 8);
      const offset = Math.floor(i / 8);
      const ts = start + offset * 300;
      return { event_id: `rebuild-${p}-${offset}`, device_id: `cam-${i % 500}`, geo_id: 1, ts: dt64(ts), type: 'person', agent_id: 'gw', received_at: dt64(ts), processed_at: dt64(ts), kafka_partition: p, kafka_offset: offset };
    });
    await ch.client.insert({ table: 'vcam.events', values: rows, format: 'JSONEachRow' });
    // Ordered by partition and time, partition 33's rows are at most 10,000 and three granules
    // (8,192 rows each) hold them; in the table's own order (device, time) every row is read.
    const bounded = createClient({ url: ch.url, password: ch.password, clickhouse_settings: { max_rows_to_read: '30000', read_overflow_mode: 'throw' } });
    try {
      const hot = new HotSet(10 * 60_000);
      await new ProcessorStore(bounded, 'vcam.events').rebuildHot(33, 6_000n, hot, start - 60_000);
      // Below offset 6,000 the latest is offset 5,999; ten minutes (2,000 events) back from it.
      const expected = rows.filter((r) => r.kafka_partition === 33 && r.kafka_offset < 6_000 && r.kafka_offset >= 3_999);
      expect(hot.size).toBe(expected.length);
      // Held by fingerprint: a duplicate of any of them is asked of the cold tier, which knows it.
      expect(expected.every((r) => hot.answer(r.event_id, Number(r.ts) * 1000) === 'ask')).toBe(true);
      expect(hot.floor).toBe(start + 5_999 * 300 - 10 * 60_000);
    } finally {
      await bounded.close();
    }
  });
});

describe('ChunkWriter ownership', () => {
  it('stops between inserts once a partition is no longer owned; the next owner of either partition replays the chunk exactly once', async () => {
    const opts = { lateAfterMs: 30_000, maxAgeMs: 29 * 86_400_000 };
    const store = new ProcessorStore(ch.client, 'own.events');
    const writer = new ChunkWriter(store, new GeoTable(ch.client), opts, 600_000);
    const events = pipelineEvents(300, { prefix: 'own-' });
    // One chunk of two partitions, 150 events each.
    const parts = await Promise.all(
      [7, 8].map(async (partition, i) => {
        const messages = events.slice(i * 150, (i + 1) * 150).map((e, j) => ({ offset: BigInt(j), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
        return { partition, hot: await writer.rebuild(partition, 0n), range: { start: 0n, end: 150n }, messages };
      }),
    );
    const rows = async () => Number((await ch.query<{ n: string }>('SELECT count() AS n FROM vcam.events WHERE kafka_partition IN (7, 8)'))[0]!.n);
    const geo = async () => Number((await ch.query<{ n: string }>('SELECT sum(events) AS n FROM vcam.geo_10s'))[0]!.n);
    const geoBefore = await geo();

    // Owned for the chunk record and the first insert, then the rebalance takes a partition.
    let checks = 0;
    await expect(writer.write(parts, { owned: () => ++checks <= 3 })).rejects.toBe(STALE);
    expect([await rows(), await geo()]).toEqual([300, geoBefore]);

    // Both partitions' records name the one chunk; the next owner of partition 8 alone replays all of it.
    const last7 = await store.lastChunk(7);
    const last8 = await store.lastChunk(8);
    expect(last8).toEqual(last7);
    expect(last8!.token).toBe('own.events:7:0-150,8:0-150');
    expect(await writer.replay(last8!, 8, { owned: () => true })).toEqual({ kind: 'replayed' });
    expect([await rows(), await geo()]).toEqual([300, geoBefore + 300]);
    // Replayed again (both partitions' next owners do it): nothing changes.
    expect(await writer.replay(last7!, 7, { owned: () => true })).toEqual({ kind: 'replayed' });
    expect([await rows(), await geo()]).toEqual([300, geoBefore + 300]);
  });
});
