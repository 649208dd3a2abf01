/**
 * Agent throughput, each figure as a ratio to raw better-sqlite3 batched inserts of the same
 * rows (same schema, WAL, same synchronous setting) measured in the same run:
 *  - ingest: agent.record() (validate, derive ids, serialise, group-commit) → outbox
 *  - publish: a pre-filled outbox drained to Debian's mosquitto (QoS 1, PUBACK, delete)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createAgent } from '../agent/index.js';
import { startMosquitto, waitFor } from '../test/helpers/brokers.js';
import { ratio, timed } from './measure.js';

const EVENTS = 100_000;
const PER_CALL = 100;
const CONCURRENCY = 8;

function cameraEvents(n: number, offset = 0) {
  const base = Date.now() - 60_000;
  return Array.from({ length: n }, (_, i) => ({ deviceId: `cam-${(offset + i) % 500}`, geoId: (offset + i) % 200, ts: base + offset + i, type: i % 3 ? 'person' : 'vehicle', confidence: 0.9 }));
}

function rawInserts(sync: 'FULL' | 'NORMAL'): number {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-raw-'));
  const db = new Database(join(dir, 'raw.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${sync}`);
  db.exec('CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, received_at INTEGER NOT NULL, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO outbox (event_id, received_at, body) VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING');
  const rows = cameraEvents(EVENTS).map((e, i) => [`${e.deviceId}#${i.toString(16).padStart(32, '0')}`, Date.now(), JSON.stringify(e)] as const);
  const tx = db.transaction((batch: (typeof rows)[number][]) => {
    for (const r of batch) insert.run(...r);
  });
  const start = process.hrtime.bigint();
  for (let i = 0; i < rows.length; i += PER_CALL) tx(rows.slice(i, i + PER_CALL));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return EVENTS / seconds;
}

async function agentIngest(sync: 'full' | 'normal'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-agent-'));
  const agent = createAgent({ id: 'bench', dataDir: dir, mqttUrl: 'mqtt://127.0.0.1:1', outboxSync: sync });
  const calls = Array.from({ length: EVENTS / PER_CALL }, (_, i) => cameraEvents(PER_CALL, i * PER_CALL));
  let next = 0;
  const { seconds } = await timed(() =>
    Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < calls.length) await agent.record(calls[next++]!);
      }),
    ),
  );
  if (agent.stats().backlogEvents !== EVENTS) throw new Error(`expected ${EVENTS} events in the outbox, found ${agent.stats().backlogEvents}`);
  await agent.close(0);
  rmSync(dir, { recursive: true, force: true });
  return EVENTS / seconds;
}

async function agentPublish(brokerUrl: string): Promise<{ eventsPerSec: number; publishes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-pub-'));
  const fill = createAgent({ id: 'bench-pub', dataDir: dir, mqttUrl: 'mqtt://127.0.0.1:1', outboxSync: 'normal' });
  for (let i = 0; i < EVENTS; i += 1000) await fill.record(cameraEvents(1000, i));
  await fill.close(0);
  const agent = createAgent({ id: 'bench-pub', dataDir: dir, mqttUrl: brokerUrl });
  let publishes = 0;
  agent.on('published', () => publishes++);
  const { seconds } = await timed(async () => {
    agent.start();
    await waitFor(() => agent.stats().backlogEvents === 0, 120_000, 'the outbox to drain');
  });
  await agent.close(0);
  rmSync(dir, { recursive: true, force: true });
  return { eventsPerSec: EVENTS / seconds, publishes };
}

export async function benchAgent(): Promise<Record<string, unknown>> {
  const rawFull = rawInserts('FULL');
  const rawNormal = rawInserts('NORMAL');
  const ingestFull = await agentIngest('full');
  const ingestNormal = await agentIngest('normal');
  const mosquitto = await startMosquitto();
  let publish: Awaited<ReturnType<typeof agentPublish>>;
  try {
    publish = await agentPublish(mosquitto.url);
  } finally {
    await mosquitto.stop();
  }
  const r = Math.round;
  return {
    events: EVENTS,
    eventsPerCall: PER_CALL,
    baseline: { name: `raw better-sqlite3 inserts, ${PER_CALL} rows per transaction, same schema`, syncFull: r(rawFull), syncNormal: r(rawNormal) },
    ingest: {
      what: `agent.record(): validate, derive eventIds, serialise, group-commit; ${CONCURRENCY} callers`,
      syncFull: { eventsPerSec: r(ingestFull), vsRawInserts: ratio(ingestFull, rawFull) },
      syncNormal: { eventsPerSec: r(ingestNormal), vsRawInserts: ratio(ingestNormal, rawNormal) },
    },
    publish: {
      what: 'pre-filled outbox drained to Debian mosquitto: QoS 1 batches, PUBACK, delete',
      eventsPerSec: r(publish.eventsPerSec),
      publishes: publish.publishes,
      vsRawInserts: ratio(publish.eventsPerSec, rawFull),
    },
  };
}
