/**
 * A chunk write that stops half-way while its partitions stay this processor's: a heartbeat
 * refused because Kafka is unreachable stops the write (the member may have been expelled), yet
 * no rebalance follows. The chunk may be recorded and partly written, so it must be replayed
 * under its tokens; written again from the same offsets with the messages fetched since, it
 * had new tokens and counted the written part twice (found by a chaos run: 3,643 events).
 *
 * And a partition's recovery that stops because a rebalance began: the batch is abandoned, not
 * thrown to kafkajs, which would crash the member and restart it after a backoff (a chaos run
 * saw 135 such crashes keep a group rebalancing for minutes).
 *
 * And, sharing this file's broker: chunks paced by --chunk-interval under steady load.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { startProcessorService, type ProcessorServiceOptions } from '../processor/index.js';
import { ProcessorStore } from '../processor/store.js';
import { ChunkWriter, STALE } from '../processor/writer.js';
import { waitFor, whenQuiet } from './helpers/brokers.js';
import { pipelineEvents, produceEvents, withDuplicates } from './helpers/events.js';
import { columnSum } from './helpers/clickhouse.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(4);
const sum = (table: string, column?: string) => columnSum(env.ch, table, column);

/** A processor on this file's stack: a short session and quick kafkajs retries, so a lost member shows in seconds. */
const startProcessor = (group: string, clientId: string, more: Partial<ProcessorServiceOptions> = {}) =>
  startProcessorService({ brokers: env.kafka.brokers, clientId, logger: silentLogger, clickhouseUrl: env.ch.url, ...env.ch.auth, group, sessionTimeoutMs: 6_000, retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 }, ...more });

/** Raw rows and distinct event ids of the events whose ids carry `prefix` (pipelineEvents' `cam-N:<prefix>i`). */
async function rawOf(prefix: string): Promise<{ rows: number; ids: number }> {
  const [r] = await env.ch.query<{ rows: string; ids: string }>(`SELECT count() AS rows, uniqExact(event_id) AS ids FROM vcam.events WHERE event_id LIKE '%:${prefix}%'`);
  return { rows: Number(r!.rows), ids: Number(r!.ids) };
}

describe('processor: a chunk write stopped half-way', () => {
  it('is replayed when its partitions stay ours, not written again from the same offsets', async () => {
    const unique = pipelineEvents(4_000, { prefix: 'ab' });
    const messages = withDuplicates(unique);
    const half = messages.length / 2;
    await produceEvents(env.kafka.brokers, messages.slice(0, half), 1_000);

    // The first chunk's write stops after its events insert, as the writer stops
    // when a heartbeat is refused; the partitions are not revoked. It stops only once the rest
    // of the messages are fetched, so a chunk from the same offsets would now be longer.
    const original = ProcessorStore.prototype.writeRows;
    let writes = 0;
    let release!: () => void;
    const rest = new Promise<void>((r) => (release = r));
    ProcessorStore.prototype.writeRows = async function (this: ProcessorStore, token, rows, beforeEach) {
      if (++writes > 1) return original.call(this, token, rows, beforeEach);
      let inserts = 0;
      await original
        .call(this, token, rows, () => {
          if (++inserts > 1) throw STALE;
        })
        .catch(() => undefined);
      await rest;
      await new Promise((r) => setTimeout(r, 2_000));
      throw STALE;
    };
    const svc = await startProcessor('g-abandoned', 'abandoned-test');
    try {
      await waitFor(() => writes >= 1, 30_000, 'the first chunk write');
      await produceEvents(env.kafka.brokers, messages.slice(half), 1_000);
      release();
      const lag = () => [...svc.processor.lag().values()].reduce((a, b) => a + b, 0);
      await waitFor(async () => (await sum('vcam.geo_10s')) >= unique.length && svc.processor.lag().size === 4 && lag() === 0, 60_000, 'every event counted');
      const raw = await whenQuiet(async () => (await env.ch.query<{ rows: string; ids: string }>('SELECT count() AS rows, uniqExact(event_id) AS ids FROM vcam.events'))[0]!);
      expect([Number(raw.rows), Number(raw.ids)]).toEqual([unique.length, unique.length]);
      expect(await sum('vcam.geo_10s')).toBe(unique.length);
      expect(await sum('vcam.device_1m', 'duplicates')).toBe(messages.length - unique.length);
      expect(writes).toBeGreaterThan(1);
    } finally {
      ProcessorStore.prototype.writeRows = original;
      await svc.close();
    }
  }, 120_000);

  it('recovering a partition while ClickHouse fails keeps the member in the group, and a rebalance meanwhile abandons the batch instead of crashing the member', async () => {
    const unique = pipelineEvents(2_000, { prefix: 'rc' });
    const messages = withDuplicates(unique);
    await produceEvents(env.kafka.brokers, messages, 1_000);

    const original = ProcessorStore.prototype.lastChunk;
    let failing = true;
    let failures = 0;
    ProcessorStore.prototype.lastChunk = async function (this: ProcessorStore, partition) {
      if (failing) {
        failures++;
        throw new Error('ClickHouse unreachable (test)');
      }
      return original.call(this, partition);
    };
    const downs: string[] = [];
    const first = await startProcessor('g-recovering', 'recovering-1');
    first.processor.member.on('down', (err) => downs.push(`first: ${err.message}`));
    let second: Awaited<ReturnType<typeof startProcessorService>> | undefined;
    try {
      await waitFor(() => failures >= 3, 30_000, 'recovery retrying while ClickHouse fails');
      second = await startProcessor('g-recovering', 'recovering-2');
      second.processor.member.on('down', (err) => downs.push(`second: ${err.message}`));
      const members = [first, second];
      await waitFor(() => members.every((m) => m.processor.assignedPartitions.length === 2), 30_000, 'the group shared between both members');
      failing = false;
      const lag = () => members.reduce((n, m) => n + [...m.processor.lag().values()].reduce((a, b) => a + b, 0), 0);
      await waitFor(async () => (await rawOf('rc')).ids === unique.length && lag() === 0, 60_000, 'every event counted');
      expect(await whenQuiet(() => rawOf('rc'))).toEqual({ rows: unique.length, ids: unique.length });
      expect(downs).toEqual([]);
    } finally {
      ProcessorStore.prototype.lastChunk = original;
      await second?.close();
      await first.close();
    }
  }, 120_000);
});

describe('processor: chunk pacing', () => {
  it('under steady load, chunks start no sooner than --chunk-interval after the previous one, and every event is counted once', async () => {
    const unique = pipelineEvents(2_400, { prefix: 'pc' });
    const chunkStarts: number[] = [];
    // New chunks only: the replays of the earlier tests' last chunks, at recovery, are not paced.
    const original = ChunkWriter.prototype.write;
    ChunkWriter.prototype.write = function (this: ChunkWriter, parts, o) {
      chunkStarts.push(Date.now());
      return original.call(this, parts, o);
    };
    const svc = await startProcessor('g-paced', 'paced-test', { chunkIntervalMs: 1_500 });
    try {
      // A send every 250 ms for 6 s: unpaced, the 200 ms linger writes a chunk after each one.
      for (let i = 0; i < 24; i++) {
        await produceEvents(env.kafka.brokers, unique.slice(i * 100, (i + 1) * 100), 100);
        await new Promise((r) => setTimeout(r, 250));
      }
      await waitFor(async () => (await rawOf('pc')).ids === unique.length, 60_000, 'every event counted');
      expect(await whenQuiet(() => rawOf('pc'))).toEqual({ rows: unique.length, ids: unique.length });
      const gaps = chunkStarts.slice(1).map((t, i) => t - chunkStarts[i]!);
      expect(gaps.length).toBeGreaterThan(2);
      // A millisecond may pass between the processor noting a chunk's start and calling write().
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1_500 - 5);
    } finally {
      ChunkWriter.prototype.write = original;
      await svc.close();
    }
  }, 120_000);
});
