/**
 * The archiver against a real ClickHouse and a table on the local disk, read back by an
 * independent reader (Delta Kernel for Java: not vcam's code, not the engine that wrote the
 * Parquet). Chunks are written by the processor's own writer, as in production.
 */
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../common/objectstore.js';
import { startClickHouse, type TestClickHouse } from '../test/helpers/clickhouse.js';
import { readDeltaTable } from '../test/helpers/delta.js';
import { pipelineEvents } from '../test/helpers/events.js';
import { GeoTable } from '../processor/geo.js';
import { ProcessorStore } from '../processor/store.js';
import { ChunkWriter, STALE } from '../processor/writer.js';
import type { PipelineEvent } from '../common/contract.js';
import { APP_ID, Archiver } from './archiver.js';
import { DeltaLog, schemaString } from './delta.js';
import { ARCHIVE_SCHEMA } from './files.js';

const DAY = 86_400_000;
const today = Math.floor(Date.now() / DAY) * DAY;
/** Five past midnight, `daysAgo` days before today (UTC): a chunk's minute of events stays inside one date, in the past. */
const early = (daysAgo: number) => today - daysAgo * DAY + 5 * 60_000;
const dateOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

let ch: TestClickHouse;
let writer: ChunkWriter;
const nextOffset = new Map<number, bigint>();
beforeAll(async () => {
  ch = await startClickHouse();
  writer = new ChunkWriter(new ProcessorStore(ch.client, 'vcam.events'), new GeoTable(ch.client), { lateAfterMs: 30_000, maxAgeMs: 29 * DAY }, 60 * 60_000);
});
afterAll(() => ch?.stop());

/** Writes `events` as the next chunk of `partition`; `owned` cuts it short like a lost partition. */
async function chunk(partition: number, events: PipelineEvent[], owned: () => boolean = () => true): Promise<void> {
  const start = nextOffset.get(partition) ?? 0n;
  const end = start + BigInt(events.length);
  nextOffset.set(partition, end);
  const messages = events.map((e, i) => ({ offset: start + BigInt(i), timestamp: e.receivedAt, value: Buffer.from(JSON.stringify(e)) }));
  await writer.write([{ partition, hot: await writer.rebuild(partition, start), range: { start, end }, messages }], { owned });
}

const events = (n: number, prefix: string, at: number) => pipelineEvents(n, { prefix, now: at, spanMs: 60_000 }).map((e) => ({ ...e, receivedAt: Date.now() }));

function newArchive(o: { retentionDays?: number; vacuumAfterMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-archive-t-'));
  return { dir, archiver: new Archiver({ client: ch.client, store: new LocalStore(dir), ...o }) };
}

/** Every event id the independent reader finds, and how often. */
const idsOf = (t: { eventIds?: Record<string, number> }) => t.eventIds ?? {};

describe('vcam archive', () => {
  it('archives each chunk once, a file per event date, with the txn version of its batch; a second run adds nothing', async () => {
    const sent = [...events(150, 'a-', early(3)), ...events(120, 'b-', early(2)), ...events(90, 'c-', early(1))];
    await chunk(0, sent.slice(0, 150));
    await chunk(1, sent.slice(150));
    const { dir, archiver } = newArchive();
    const batches = await archiver.drain();
    expect(batches.map((b) => [b.batch, b.rows, b.files])).toEqual([[1, 360, 3]]);
    expect(await archiver.drain()).toEqual([]);
    const t = await readDeltaTable(`file://${dir}`, APP_ID, 'event_id');
    expect(t.txnVersion).toBe(1);
    expect(t.version).toBe(1);
    expect(t.rowsPerPartition).toEqual({ [dateOf(early(3))]: 150, [dateOf(early(2))]: 120, [dateOf(early(1))]: 90 });
    expect(idsOf(t)).toEqual(Object.fromEntries(sent.map((e) => [e.eventId, 1])));
    expect(t.schema).toEqual(ARCHIVE_SCHEMA.fields.map(({ name, type, nullable }) => ({ name, type, nullable })));
    archiver.close();
  });

  it('a chunk cut short before its events landed is not archived until its replay completes it', async () => {
    const { dir, archiver } = newArchive();
    await archiver.drain();
    const cut = events(80, 'cut-', early(1));
    let checks = 0;
    // Owned for the look-up and the record, lost before the first insert.
    await expect(chunk(7, cut, () => ++checks <= 2)).rejects.toBe(STALE);
    expect(await archiver.drain()).toEqual([]);
    await writer.replay((await writer.store.lastChunk(7))!, 7, { owned: () => true });
    expect((await archiver.drain()).map((b) => b.rows)).toEqual([80]);
    const t = await readDeltaTable(`file://${dir}`, APP_ID, 'event_id');
    for (const e of cut) expect(idsOf(t)[e.eventId]).toBe(1);
    archiver.close();
  });

  it('a chunk without events (dead letters only) is written and gives the archive nothing', async () => {
    const { archiver } = newArchive();
    await archiver.drain();
    const refused = events(5, 'bad-', early(1)).map((e) => ({ ...e, type: '' }));
    await chunk(8, refused);
    expect(Number((await ch.query<{ n: string }>("SELECT count() AS n FROM vcam.dlq WHERE payload LIKE '%bad-%'"))[0]!.n)).toBe(5);
    expect(await archiver.drain()).toEqual([]);
    archiver.close();
  });

  it('late events for a date already archived land in it exactly once, beside its first file', async () => {
    const { dir, archiver } = newArchive();
    await archiver.drain();
    const before = await readDeltaTable(`file://${dir}`, APP_ID);
    const lateOnes = events(40, 'late-', early(3));
    await chunk(2, lateOnes);
    expect((await archiver.drain()).map((b) => [b.rows, b.files])).toEqual([[40, 1]]);
    const after = await readDeltaTable(`file://${dir}`, APP_ID, 'event_id');
    expect(after.rowsPerPartition[dateOf(early(3))]).toBe((before.rowsPerPartition[dateOf(early(3))] ?? 0) + 40);
    for (const e of lateOnes) expect(idsOf(after)[e.eventId]).toBe(1);
    expect(Object.values(idsOf(after)).every((n) => n === 1)).toBe(true);
    archiver.close();
  });

  it('retention removes the dates past the bound and the vacuum deletes their files and orphans; newer dates are untouched', async () => {
    await chunk(3, events(30, 'old-', early(5)));
    const { dir, archiver } = newArchive({ retentionDays: 3, vacuumAfterMs: 0 });
    await archiver.drain();
    const snap = (await archiver.log.snapshot())!;
    const oldFiles = [...snap.files.values()].filter((a) => a.partitionValues.event_date === dateOf(early(5)));
    expect(oldFiles.length).toBe(1);
    // What a batch cut short between its files and its commit leaves behind.
    mkdirSync(join(dir, `event_date=${dateOf(early(2))}`), { recursive: true });
    const orphan = join(dir, `event_date=${dateOf(early(2))}`, 'part-b99-orphan.zstd.parquet');
    writeFileSync(orphan, 'never committed');
    const live = await readDeltaTable(`file://${dir}`, APP_ID);
    expect(await archiver.expire()).toEqual({ removed: 1, vacuumed: 2 });
    expect(existsSync(join(dir, oldFiles[0]!.path))).toBe(false);
    expect(existsSync(orphan)).toBe(false);
    const t = await readDeltaTable(`file://${dir}`, APP_ID);
    const { [dateOf(early(5))]: gone, ...kept } = live.rowsPerPartition;
    expect(gone).toBe(30);
    expect(t.rowsPerPartition).toEqual(kept);
    archiver.close();
  });

  it('refuses a Delta table whose schema is not the archive schema, naming the difference', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vcam-archive-t-'));
    const other = { fields: [...ARCHIVE_SCHEMA.fields, { name: 'extra', type: 'string' as const, nullable: true }], partitionColumns: ARCHIVE_SCHEMA.partitionColumns };
    await new DeltaLog(new LocalStore(dir)).create(other);
    expect(schemaString(other)).toContain('extra');
    const archiver = new Archiver({ client: ch.client, store: new LocalStore(dir) });
    await expect(archiver.open()).rejects.toThrow(/schema is not vcam's archive schema: column extra \(string\) is not in vcam's schema/);
    archiver.close();
  });
});
