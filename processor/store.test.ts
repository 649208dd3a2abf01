/**
 * The processor's ClickHouse side against the real engine: the cold tier's look-up at the size a
 * lagging chunk produces, and a chunk write that loses its partition half-way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64 } from '../clickhouse/schema.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { pipelineEvents } from '../test/helpers/events.js';
import { GeoTable } from './geo.js';
import { ProcessorStore } from './store.js';
import { ChunkWriter, STALE } from './writer.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(() => ch?.stop());

describe('ProcessorStore.coldSeen', () => {
  it('answers for 20,000 events at once (1.5 MB of ids, beyond the 1 MiB a URL may hold) with exactly those counted before the offset', async () => {
    const events = pipelineEvents(20_000, { prefix: `a-long-camera-supplied-event-identifier-` });
    // Every third event was counted earlier in this partition, one more at a later offset.
    const counted = events.filter((_, i) => i % 3 === 0);
    await ch.client.insert({
      table: 'vcam.events',
      values: counted.map((e, i) => ({ event_id: e.eventId, device_id: e.deviceId, geo_id: e.geoId, ts: dt64(e.ts), type: e.type, agent_id: 'gw', received_at: dt64(e.receivedAt), processed_at: dt64(e.receivedAt), kafka_partition: 3, kafka_offset: i === 0 ? 99_999 : i })),
      format: 'JSONEachRow',
    });
    const seen = await new ProcessorStore(ch.client, 'vcam.events').coldSeen(3, 20_000n, events);
    expect(seen.size).toBe(counted.length - 1);
    expect(seen.has(counted[1]!.eventId)).toBe(true);
    expect(seen.has(counted[0]!.eventId)).toBe(false);
    expect(seen.has(events[1]!.eventId)).toBe(false);
  });
});

describe('ChunkWriter ownership', () => {
  it('stops between inserts once the partition is no longer owned; the next owner redoes the chunk exactly once', async () => {
    const opts = { lateAfterMs: 30_000, maxAgeMs: 29 * 86_400_000 };
    const writer = new ChunkWriter(new ProcessorStore(ch.client, 'own.events'), new GeoTable(ch.client), opts, 600_000);
    const events = pipelineEvents(300, { prefix: 'own-' });
    const chunk = events.map((e, i) => ({ offset: BigInt(i), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
    const range = { start: 0n, end: BigInt(chunk.length) };
    const rows = async () => Number((await ch.query<{ n: string }>("SELECT count() AS n FROM vcam.events WHERE kafka_partition = 7"))[0]!.n);
    const geo = async () => Number((await ch.query<{ n: string }>('SELECT sum(events) AS n FROM vcam.geo_10s'))[0]!.n);
    const geoBefore = await geo();

    // Owned for the chunk record and the first insert, then the rebalance takes the partition.
    let checks = 0;
    await expect(writer.write(7, await writer.rebuild(7, 0n), range, chunk, { redo: false, owned: () => ++checks <= 3 })).rejects.toBe(STALE);
    expect(await rows()).toBe(300);
    expect(await geo()).toBe(geoBefore);

    // The next owner finds the recorded chunk and redoes it under the same tokens.
    await writer.write(7, await writer.rebuild(7, 0n), range, chunk, { redo: true, owned: () => true });
    expect(await rows()).toBe(300);
    expect(await geo()).toBe(geoBefore + 300);
  });
});
