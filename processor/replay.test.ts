/**
 * A replay against ClickHouse's insert deduplication window, at and past that distance, with a
 * window of 50 blocks so that the distance is reached by real inserts (production: 10,000).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { pipelineEvents } from '../test/helpers/events.js';
import { GeoTable } from './geo.js';
import { DEDUPLICATED_TABLES, ProcessorStore } from './store.js';
import { ChunkWriter, STALE } from './writer.js';

const WINDOW = 50;
const DAY = 86_400_000;
let ch: Awaited<ReturnType<typeof startClickHouse>>;
let writer: ChunkWriter;
beforeAll(async () => {
  ch = await startClickHouse();
  for (const t of DEDUPLICATED_TABLES) await ch.client.command({ query: `ALTER TABLE ${t} MODIFY SETTING non_replicated_deduplication_window = ${WINDOW}` });
  writer = new ChunkWriter(new ProcessorStore(ch.client, 'vcam.events'), new GeoTable(ch.client), { lateAfterMs: 30_000, maxAgeMs: 29 * DAY }, 60 * 60_000);
});
afterAll(() => ch?.stop());

// Every chunk's events within one UTC day: one block per table per chunk.
const dayStart = Math.floor(Date.now() / DAY) * DAY;
const now = Date.now() - dayStart > 10 * 60_000 ? Date.now() - 60_000 : dayStart - 3_600_000;
const messages = (prefix: string, n = 100) => pipelineEvents(n, { prefix, now, spanMs: 30_000 }).map((e, i) => ({ offset: BigInt(i), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
const part = async (partition: number, prefix: string) => ({ partition, hot: await writer.rebuild(partition, 0n), range: { start: 0n, end: 100n }, messages: messages(prefix) });

/** A chunk written up to its events, then cut short (its owner lost the partition). */
async function cutShort(partition: number, prefix: string): Promise<void> {
  let checks = 0;
  await expect(writer.write([await part(partition, prefix)], { owned: () => ++checks <= 3 })).rejects.toBe(STALE);
}

/** `n` complete chunks on other partitions: each adds one block to every table's deduplication log. */
async function othersWrite(n: number, from: number): Promise<void> {
  for (let i = 0; i < n; i++) await writer.write([await part(100 + from + i, `other-${from + i}-`)], { owned: () => true });
}

const counted = async (prefix: string) => Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM vcam.events WHERE event_id LIKE '%:${prefix}%'`))[0]!.n);
/** Every chunk's events summed in an aggregate table (all chunks share devices). */
const aggregated = async () => Number((await ch.query<{ n: string }>('SELECT sum(events) AS n FROM vcam.device_1m'))[0]!.n);

describe('replaying a chunk cut short, against the deduplication window', () => {
  it('inside the window: replayed, what landed is dropped by ClickHouse and the rest written, exactly once', async () => {
    await cutShort(0, 'near-');
    await othersWrite(30, 0);
    const last = (await writer.store.lastChunk(0))!;
    // The 30 chunks after it (none before it in this file).
    expect(await writer.store.replayDistance(last)).toBe(30);
    expect(await writer.replay(last, 0, { owned: () => true })).toEqual({ kind: 'replayed' });
    expect(await counted('near-')).toBe(100);
    // The 30 complete chunks and this one's aggregates, written once by the replay.
    expect(await aggregated()).toBe(31 * 100);
  });

  it('past the window: not replayed but held (distance and window reported); forced, the same replay would count the chunk twice', async () => {
    await cutShort(1, 'far-');
    await othersWrite(60, 30);
    const last = (await writer.store.lastChunk(1))!;
    // Counted from a minute before the chunk (clocks a little apart): this file's other 91 chunks, all written within it.
    expect(await writer.replay(last, 1, { owned: () => true })).toEqual({ kind: 'beyond_window', distance: 91, window: WINDOW });
    expect(await counted('far-')).toBe(100);
    // What the guard prevents: ClickHouse no longer remembers the chunk's tokens.
    expect(await writer.replay(last, 1, { owned: () => true, beyondWindow: true })).toEqual({ kind: 'replayed' });
    expect(await counted('far-')).toBe(200);
  });
});
