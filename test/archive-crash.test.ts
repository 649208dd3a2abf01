/**
 * The archiver as its own process against S3 (S3Proxy) under faults: kill -9 at each point of a
 * batch, and S3 down for a minute. After each, every event id ClickHouse holds is in the Delta
 * table exactly once, counted by an independent reader (Delta Kernel for Java) over the files
 * S3Proxy keeps on disk.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GeoTable } from '../processor/geo.js';
import { ProcessorStore } from '../processor/store.js';
import { ChunkWriter } from '../processor/writer.js';
import { APP_ID } from '../archive/index.js';
import type { PipelineEvent } from '../common/contract.js';
import { freePort, waitFor } from './helpers/brokers.js';
import { startClickHouse, type TestClickHouse } from './helpers/clickhouse.js';
import { readDeltaTable } from './helpers/delta.js';
import { pipelineEvents } from './helpers/events.js';
import { vcam, waitHealthy, type Proc } from './helpers/processes.js';
import { startTestS3 } from './helpers/s3.js';
import type { LocalS3 } from '../s3/index.js';

const DAY = 86_400_000;
let ch: TestClickHouse;
let s3: LocalS3;
let writer: ChunkWriter;
let credentials: string;
const written: PipelineEvent[] = [];
let offset = 0n;

beforeAll(async () => {
  [ch, s3] = await Promise.all([startClickHouse(), startTestS3()]);
  writer = new ChunkWriter(new ProcessorStore(ch.client, 'vcam.events'), new GeoTable(ch.client), { lateAfterMs: 30_000, maxAgeMs: 29 * DAY }, 60 * 60_000);
  credentials = join(mkdtempSync(join(tmpdir(), 'vcam-s3c-')), 's3.credentials');
  writeFileSync(credentials, `AWS_ACCESS_KEY_ID=${s3.identity}\nAWS_SECRET_ACCESS_KEY=${s3.credential}\n`, { mode: 0o600 });
}, 120_000);
afterAll(async () => {
  await ch?.stop();
  await s3?.stop();
});

const today = Math.floor(Date.now() / DAY) * DAY;

/** A processor chunk of `n` new events on partition 0, a minute of each of the three days before today (UTC). */
async function chunk(n: number, prefix: string): Promise<void> {
  const events = [1, 2, 3].flatMap((d) => pipelineEvents(Math.ceil(n / 3), { prefix: `${prefix}d${d}-`, now: today - d * DAY + 5 * 60_000, spanMs: 60_000 }));
  const messages = events.map((e, i) => ({ offset: offset + BigInt(i), timestamp: Date.now(), value: Buffer.from(JSON.stringify({ ...e, receivedAt: Date.now() })) }));
  const range = { start: offset, end: offset + BigInt(events.length) };
  await writer.write([{ partition: 0, hot: await writer.rebuild(0, offset), range, messages }], { owned: () => true });
  offset = range.end;
  written.push(...events);
}

const table = (prefix: string) => `s3://lake/${prefix}`;
const archiveArgs = (prefix: string) => ['archive', '--archive-url', table(prefix), '--s3-endpoint', s3.endpoint, '--s3-credentials-file', credentials, ...ch.args, '--log-level', 'warn'];
/** The table as Delta Kernel reads it from S3Proxy's files. */
const read = (prefix: string) => readDeltaTable(`file://${join(s3.basedir, 'lake', prefix)}`, APP_ID, 'event_id');
const exactlyOnce = () => Object.fromEntries(written.map((e) => [e.eventId, 1]));

describe('the archiver under faults', () => {
  it.each(['archive-planned', 'archive-files', 'archive-committed'])('kill -9 at %s, then a restart: every event exactly once', async (point) => {
    await chunk(300, `k-${point}-`);
    const killed = vcam([...archiveArgs(point), '--once'], { VCAM_CRASH_AT: `${point}:1` });
    expect(await killed.exited).toBe('SIGKILL');
    await chunk(150, `k2-${point}-`);
    const again = vcam([...archiveArgs(point), '--once']);
    expect(await again.exited, again.stderr()).toBe(0);
    const t = await read(point);
    expect(t.eventIds).toEqual(exactlyOnce());
    expect(t.rows).toBe(written.length);
    // Killed after planning or writing files, the batch was redone as planned: batch 1, then batch 2 for the chunk after.
    expect(t.txnVersion).toBe(2);
    if (point === 'archive-files') {
      // The cut attempt's files are still on S3 (the vacuum waits 7 days) but in no commit: readers never see them.
      const onDisk = readdirSync(join(s3.basedir, 'lake', point), { recursive: true }).filter((f) => String(f).endsWith('.parquet')).length;
      expect(onDisk - t.files).toBe(3);
    }
  });

  it('S3 down for 60 s: the archive lags and alerts, then catches up with nothing lost or doubled', async () => {
    const port = await freePort();
    const proc: Proc = vcam([...archiveArgs('outage'), '--every', '1s', '--max-lag', '10s', '--failing-after', '10s', '--http-port', String(port)]);
    try {
      await chunk(300, 'o1-');
      await waitHealthy(port, proc, 60_000);
      const metric = async (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? NaN);
      const lag = () => metric('vcam_archive_lag_seconds');
      await waitFor(async () => (await metric('vcam_archive_rows_total')) === written.length, 60_000, 'everything so far archived');
      await s3.kill();
      const downAt = Date.now();
      for (let i = 0; i < 6; i++) {
        await chunk(90, `o2-${i}-`);
        await new Promise((r) => setTimeout(r, 5_000));
      }
      const alerts = async () => (await ch.query<{ kind: string; state: string }>("SELECT kind, state FROM vcam.alerts FINAL WHERE kind LIKE 'archive_%' ORDER BY kind")).map((a) => `${a.kind}:${a.state}`);
      await waitFor(async () => (await alerts()).join() === 'archive_failing:open,archive_lagging:open', 40_000, 'both archive alerts open');
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
      expect(await lag()).toBeGreaterThan(10);
      await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - downAt))));
      await s3.start();
      await waitFor(async () => (await lag()) === 0, 60_000, 'the archive caught up');
      const t = await read('outage');
      expect(t.eventIds).toEqual(exactlyOnce());
      await waitFor(async () => (await alerts()).join() === 'archive_failing:resolved,archive_lagging:resolved', 40_000, 'both archive alerts resolved');
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
    }
  }, 300_000);
});
