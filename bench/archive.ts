/**
 * The archiver's throughput, beside a baseline from the same run: the same rows exported by the
 * same ClickHouse as one `SELECT … FORMAT Parquet` (what the archive cannot beat: it exports
 * those bytes and adds its ledger queries, statistics, uploads and commits). Into a local
 * directory, and into S3Proxy (S3 API, SigV4, conditional PUT) when its jars are fetched.
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { Archiver } from '../archive/index.js';
import { ClickHouseServer } from '../clickhouse/server.js';
import { migrate } from '../clickhouse/schema.js';
import { LocalStore, type ObjectStore } from '../common/objectstore.js';
import { HotSet } from '../processor/dedup.js';
import { decodeChunk, hotAnswers, processChunk, type PipelineOptions } from '../processor/pipeline.js';
import { ProcessorStore } from '../processor/store.js';
import { startLocalS3 } from '../s3/index.js';
import { pipelineEvents } from '../test/helpers/events.js';
import { ratio, timed } from './measure.js';

const DAY = 86_400_000;
const options: PipelineOptions = { lateAfterMs: 30_000, maxAgeMs: 29 * DAY };

/** `events` raw events in chunks of 5,000, spread over three dates, written as the processor writes them. */
async function fill(client: ClickHouseClient, events: number): Promise<void> {
  const store = new ProcessorStore(client, 'bench');
  const geo = new Map(Array.from({ length: 200 }, (_, g) => [g, { name: `Geo ${g}`, region: 'r' }]));
  const hot = new HotSet(Infinity);
  const now = Date.now();
  const all = pipelineEvents(events, { now, spanMs: 3 * DAY, devices: 500, geos: 200 });
  for (let i = 0; i < all.length; i += 5_000) {
    const msgs = all.slice(i, i + 5_000).map((e, j) => ({ offset: BigInt(i + j), timestamp: now, value: Buffer.from(JSON.stringify(e)) }));
    const decoded = decodeChunk(msgs, options);
    const r = processChunk(0, decoded, hotAnswers(decoded, hot), new Set(), geo, options);
    const parts = [{ partition: 0, range: { start: BigInt(i), end: BigInt(i + msgs.length) } }];
    const token = store.token(parts);
    const rows = store.rows([r]);
    await store.recordChunk(token, parts, rows);
    await store.writeRows(token, rows);
  }
}

async function archive(client: ClickHouseClient, store: ObjectStore, events: number) {
  const archiver = new Archiver({ client, store });
  try {
    const t = await timed(() => archiver.drain());
    const rows = t.value.reduce((n, b) => n + b.rows, 0);
    if (rows !== events) throw new Error(`archived ${rows} rows, expected ${events}`);
    const bytes = t.value.reduce((n, b) => n + b.bytes, 0);
    const files = t.value.reduce((n, b) => n + b.files, 0);
    return { rowsPerSec: Math.round(rows / t.seconds), batches: t.value.length, files, bytes, bytesPerRow: Math.round((bytes / rows) * 10) / 10 };
  } finally {
    archiver.close();
  }
}

export async function benchArchive(): Promise<Record<string, unknown>> {
  const events = process.env.VCAM_BENCH_QUICK ? 50_000 : 300_000;
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-archive-'));
  const server = new ClickHouseServer({ dataDir: join(dir, 'ch'), port: 0 });
  await server.start();
  const client = createClient({ url: `http://127.0.0.1:${server.port}`, request_timeout: 60_000 });
  try {
    await migrate(client);
    await fill(client, events);
    // Baseline: the same rows, one Parquet export by the same server.
    const exported = await timed(async () => {
      const r = await client.exec({ query: 'SELECT * FROM vcam.events FORMAT Parquet', clickhouse_settings: { output_format_parquet_compression_method: 'zstd' } });
      await pipeline(r.stream, createWriteStream(join(dir, 'baseline.parquet')));
    });
    const exportRate = events / exported.seconds;
    const local = await archive(client, new LocalStore(join(dir, 'local')), events);
    let s3: Record<string, unknown> | string;
    try {
      const proxy = await startLocalS3({ dataDir: join(dir, 's3'), bucket: 'lake' });
      try {
        const r = await archive(client, proxy.store('s3://lake/events'), events);
        s3 = { ...r, vsParquetExport: ratio(r.rowsPerSec, exportRate) };
      } finally {
        await proxy.stop();
      }
    } catch (err) {
      s3 = `skipped: ${(err as Error).message.split('\n')[0]}`;
    }
    return {
      events,
      baseline: { name: 'the same rows as one SELECT … FORMAT Parquet (zstd) from the same server', rowsPerSec: Math.round(exportRate) },
      localDirectory: { ...local, vsParquetExport: ratio(local.rowsPerSec, exportRate) },
      s3Proxy: s3,
    };
  } finally {
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
