/**
 * The tests' independent Delta reader (Delta Kernel for Java) on a table written here by hand:
 * the log as the protocol spells it, the Parquet from a real ClickHouse. What it reports is what
 * the log says is live, counted from the data files.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VcamError } from '../../common/errors.js';
import { startClickHouse, type TestClickHouse } from './clickhouse.js';
import { readDeltaTable } from './delta.js';

const APP = 'vcam-test-writer';
let ch: TestClickHouse;
let table: string;

beforeAll(async () => {
  ch = await startClickHouse();
  table = mkdtempSync(join(tmpdir(), 'vcam-delta-'));
}, 60_000);
afterAll(async () => {
  await ch?.stop();
  if (table) rmSync(table, { recursive: true, force: true });
});

/** Rows `from`..`from+count-1` of a day as a Parquet file in the table (the partition column left out, as Spark does); its add action. */
async function dataFile(day: string, from: number, count: number): Promise<Record<string, unknown>> {
  const sql = `SELECT concat('e-', toString(number)) AS event_id, toInt64(number) AS n, toDateTime64('${day} 00:00:00', 6, 'UTC') + toIntervalSecond(number) AS ts, if(number % 5 = 0, NULL, number / 2) AS v
    FROM numbers(${from}, ${count}) SETTINGS output_format_parquet_string_as_string = 1 FORMAT Parquet`;
  const res = await fetch(ch.url, { method: 'POST', body: sql, headers: { 'X-ClickHouse-User': 'default', 'X-ClickHouse-Key': ch.password } });
  if (!res.ok) throw new Error(`ClickHouse: ${res.status} ${await res.text()}`);
  const path = `d=${day}/part-${from}-${count}.parquet`;
  mkdirSync(join(table, `d=${day}`), { recursive: true });
  writeFileSync(join(table, path), Buffer.from(await res.arrayBuffer()));
  return { path, partitionValues: { d: day }, size: statSync(join(table, path)).size, modificationTime: Date.now(), dataChange: true };
}

function commit(version: number, actions: Record<string, unknown>[]): void {
  mkdirSync(join(table, '_delta_log'), { recursive: true });
  writeFileSync(join(table, '_delta_log', `${String(version).padStart(20, '0')}.json`), actions.map((a) => `${JSON.stringify(a)}\n`).join(''));
}

const SCHEMA = [
  { name: 'event_id', type: 'string', nullable: false },
  { name: 'n', type: 'long', nullable: false },
  { name: 'ts', type: 'timestamp', nullable: false },
  { name: 'v', type: 'double', nullable: true },
  { name: 'd', type: 'date', nullable: false },
];

describe('readDeltaTable (Delta Kernel)', () => {
  it('reads a hand-written table: version, schema, partitions, txn of an appId, and every live row counted by id', async () => {
    const a = await dataFile('2026-01-01', 0, 300);
    const b = await dataFile('2026-01-02', 300, 200);
    commit(0, [
      { commitInfo: { timestamp: Date.now(), operation: 'WRITE', operationParameters: { mode: 'Append', partitionBy: '["d"]' }, engineInfo: 'vcam-test' } },
      { protocol: { minReaderVersion: 1, minWriterVersion: 2 } },
      {
        metaData: {
          id: '4c8f3f2a-5c34-4a0e-9d43-6f1b1c1f0001',
          format: { provider: 'parquet', options: {} },
          schemaString: JSON.stringify({ type: 'struct', fields: SCHEMA.map((f) => ({ ...f, metadata: {} })) }),
          partitionColumns: ['d'],
          configuration: {},
          createdTime: Date.now(),
        },
      },
      { txn: { appId: APP, version: 7, lastUpdated: Date.now() } },
      { add: a },
      { add: b },
    ]);

    const v0 = await readDeltaTable(`file://${table}`, APP);
    expect(v0).toEqual({ version: 0, partitionColumns: ['d'], schema: SCHEMA, txnVersion: 7, files: 2, rows: 500, rowsPerPartition: { '2026-01-01': 300, '2026-01-02': 200 } });

    // v1 takes day one's file away and adds rows 300..349 of day two again: ids e-300..e-349 now twice.
    const c = await dataFile('2026-01-02', 300, 50);
    commit(1, [{ txn: { appId: APP, version: 8, lastUpdated: Date.now() } }, { remove: { path: a.path, deletionTimestamp: Date.now(), dataChange: true } }, { add: c }]);
    const v1 = await readDeltaTable(`file://${table}`, APP, 'event_id');
    const ids: Record<string, number> = {};
    for (let i = 300; i < 500; i++) ids[`e-${i}`] = i < 350 ? 2 : 1;
    expect(v1).toEqual({ version: 1, partitionColumns: ['d'], schema: SCHEMA, txnVersion: 8, files: 2, rows: 250, rowsPerPartition: { '2026-01-02': 250 }, eventIds: ids, idNulls: 0 });
    expect((await readDeltaTable(`file://${table}`, 'another-app')).txnVersion).toBe(null);
  }, 60_000);

  it('fails with the reader’s own reason when there is no table', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'vcam-delta-none-'));
    try {
      const err = await readDeltaTable(`file://${empty}`, APP).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VcamError);
      expect((err as VcamError).message).toMatch(new RegExp(`^Delta Kernel could not read file://${empty}: [\\s\\S]*TableNotFoundException`));
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);
});
