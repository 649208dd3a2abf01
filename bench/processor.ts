/**
 * Processor throughput, each figure beside a baseline from the same run:
 *  - pipeline (no I/O): decode + validate + dedup + join + aggregate / raw JSON.parse of the same messages
 *  - with ClickHouse (embedded server over HTTP: the cold tier's look-ups of the hot tier's hits,
 *    the chunk record, every table's insert with its dedup token) /
 *    raw inserts of the same raw-event rows alone into the same server
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { ClickHouseServer } from '../clickhouse/server.js';
import { migrate } from '../clickhouse/schema.js';
import { HotSet } from '../processor/dedup.js';
import { coldCandidates, decodeChunk, hotAnswers, processChunk, type ChunkMessage, type ChunkResult, type PipelineOptions } from '../processor/pipeline.js';
import { ProcessorStore } from '../processor/store.js';
import { pipelineEvents, withDuplicates } from '../test/helpers/events.js';
import { ratio, timed } from './measure.js';

const EVENTS = 100_000;
const CHUNK = 5_000;
const options: PipelineOptions = { lateAfterMs: 30_000, maxAgeMs: 29 * 86_400_000 };

function messages(): ChunkMessage[] {
  const now = Date.now();
  return withDuplicates(pipelineEvents(EVENTS, { now, spanMs: 10 * 60_000, devices: 500, geos: 200 })).map((e, i) => ({ offset: BigInt(i), timestamp: now, value: Buffer.from(JSON.stringify(e)) }));
}

function chunks<T>(xs: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) out.push(xs.slice(i, i + CHUNK));
  return out;
}

export async function benchProcessor(): Promise<Record<string, unknown>> {
  const msgs = messages();
  const geo = new Map(Array.from({ length: 200 }, (_, g) => [g, { name: `Geo ${g}`, region: 'r' }]));

  // Baseline 1: JSON.parse alone.
  let t = process.hrtime.bigint();
  for (const m of msgs) JSON.parse(m.value!.toString('utf8'));
  const parseRate = msgs.length / (Number(process.hrtime.bigint() - t) / 1e9);

  // The pipeline without I/O. The cold tier's answers (about the hot tier's hits, the duplicates)
  // are what ClickHouse would give: the ids first seen in an earlier chunk, known before timing,
  // since that look-up is ClickHouse's work, measured with it below.
  const all = chunks(msgs);
  const firstChunk = new Map<string, number>();
  all.forEach((c, i) => {
    for (const m of c) {
      const id = (JSON.parse(m.value!.toString('utf8')) as { eventId: string }).eventId;
      if (!firstChunk.has(id)) firstChunk.set(id, i);
    }
  });
  const hot = new HotSet(10 * 60_000);
  t = process.hrtime.bigint();
  let counted = 0;
  all.forEach((c, i) => {
    const decoded = decodeChunk(c, options);
    const answers = hotAnswers(decoded, hot);
    const cold = new Set(coldCandidates(decoded, answers).flatMap((e) => (firstChunk.get(e.eventId)! < i ? [e.eventId] : [])));
    const r = processChunk(0, decoded, answers, cold, geo, options);
    for (const e of r.events) hot.add(e.event_id, e.ts);
    counted += r.events.length;
  });
  const pipelineRate = msgs.length / (Number(process.hrtime.bigint() - t) / 1e9);
  if (counted !== EVENTS) throw new Error(`counted ${counted}, expected ${EVENTS}`);

  // With ClickHouse: the embedded server over HTTP.
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-ch-'));
  const server = new ClickHouseServer({ dataDir: dir, port: 0 });
  await server.start();
  const client = createClient({ url: `http://127.0.0.1:${server.port}` });
  try {
    await migrate(client);
    const store = new ProcessorStore(client, 'bench');
    const hot2 = new HotSet(10 * 60_000);
    const results: ChunkResult[] = [];
    const written = await timed(async () => {
      let start = 0n;
      for (const c of chunks(msgs)) {
        const decoded = decodeChunk(c, options);
        const answers = hotAnswers(decoded, hot2);
        const cold = await store.coldSeen([{ partition: 0, before: start, events: coldCandidates(decoded, answers) }]);
        const r = processChunk(0, decoded, answers, cold.get(0)!, geo, options);
        const parts = [{ partition: 0, range: { start, end: start + BigInt(c.length) } }];
        const token = store.token(parts);
        const rows = store.rows([r]);
        await store.recordChunk(token, parts, rows);
        await store.writeRows(token, rows);
        for (const e of r.events) hot2.add(e.event_id, e.ts);
        results.push(r);
        start = parts[0]!.range.end;
      }
    });
    const rowsWritten = results.reduce((n, r) => n + r.events.length, 0);
    if (rowsWritten !== EVENTS) throw new Error(`wrote ${rowsWritten} events, expected ${EVENTS}`);
    const withWritesRate = msgs.length / written.seconds;

    // Baseline 2: the same raw-event rows inserted alone, one insert per chunk.
    await client.command({ query: 'CREATE TABLE vcam.bench_raw AS vcam.events' });
    const raw = await timed(async () => {
      for (const r of results) {
        await client.insert({
          table: 'vcam.bench_raw',
          values: r.events.map((e) => ({ ...e, ts: (e.ts / 1000).toFixed(3), received_at: (e.received_at / 1000).toFixed(3), processed_at: (Date.now() / 1000).toFixed(3) })),
          format: 'JSONEachRow',
        });
      }
    });
    const rawRate = msgs.length / raw.seconds;
    const r = Math.round;
    return {
      messages: msgs.length,
      distinct: EVENTS,
      chunkSize: CHUNK,
      pipeline: {
        what: 'decode + validate + dedup + geo join + aggregate, no I/O',
        eventsPerSec: r(pipelineRate),
        baseline: { name: 'JSON.parse of the same messages', eventsPerSec: r(parseRate) },
        vsJsonParse: ratio(pipelineRate, parseRate),
      },
      withClickHouse: {
        what: "pipeline + cold look-ups of the hot tier's hits + chunk record with its rows + token-deduplicated inserts into the embedded ClickHouse over HTTP",
        eventsPerSec: r(withWritesRate),
        baseline: { name: 'the same raw-event rows inserted alone, one insert per chunk, same server', eventsPerSec: r(rawRate) },
        vsRawInserts: ratio(withWritesRate, rawRate),
        vsJsonParse: ratio(withWritesRate, parseRate),
      },
    };
  } finally {
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
