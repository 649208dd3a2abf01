/**
 * The exactly-once argument at its sharpest points, made deterministic: a processor dies after
 * recording a chunk and writing only some of its tables, or after all its writes but before
 * the offset commit. The next processor must leave every table as if the chunk was written once.
 */
import { createClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../common/log.js';
import { startProcessorService } from '../processor/index.js';
import { ProcessorStore } from '../processor/store.js';
import { waitFor, whenQuiet } from './helpers/brokers.js';
import { columnSum } from './helpers/clickhouse.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';
import { countPerGeoMinute, pipelineEvents, produceEvents, withDuplicates } from './helpers/events.js';

const env = useKafkaAndClickHouse(4);

const options = () => ({
  brokers: env.kafka.brokers,
  clientId: 'redo-test',
  logger: silentLogger,
  clickhouseUrl: env.ch.url,
  ...env.ch.auth,
  group: 'g-redo',
  sessionTimeoutMs: 3_000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
});
const sum = (table: string, column?: string) => columnSum(env.ch, table, column);

describe('processor redo', () => {
  it('a chunk cut short after some of its inserts, or before its commit, is completed exactly once', async () => {
    const unique = pipelineEvents(4_000, { prefix: 'r' });
    const messages = withDuplicates(unique);
    const half = messages.length / 2;
    await produceEvents(env.kafka.brokers, messages.slice(0, half), 1_000);

    // First processor: its first chunk (all four partitions) is written; the second, of the
    // messages produced after it, dies after its events insert (aggregates missing); every
    // chunk's offset commit is lost as well.
    const original = ProcessorStore.prototype.writeRows;
    let chunks = 0;
    let died = false;
    ProcessorStore.prototype.writeRows = async function (this: ProcessorStore, ...args: Parameters<typeof original>) {
      if (++chunks >= 2) {
        // From the second chunk on (retries included), one insert goes through, then the process "dies".
        const real = (this as unknown as { client: ReturnType<typeof createClient> }).client;
        let inserts = 0;
        const dying = new Proxy(real, {
          get: (target, key) =>
            key === 'insert'
              ? async (params: Parameters<typeof real.insert>[0]) => {
                  if (++inserts > 1) {
                    died = true;
                    throw new Error('process died mid-chunk');
                  }
                  return target.insert(params);
                }
              : Reflect.get(target, key),
        });
        return original.apply(Object.create(this, { client: { value: dying } }), args);
      }
      return original.apply(this, args);
    };
    const first = await startProcessorService(options());
    const consumer = first.processor as unknown as { consumer: { commitOffsets: () => Promise<void> } };
    consumer.consumer.commitOffsets = async () => undefined;
    await waitFor(() => chunks === 1 && first.processor.lag().size === 4 && [...first.processor.lag().values()].every((l) => l === 0), 30_000, 'the first chunk');
    await produceEvents(env.kafka.brokers, messages.slice(half), 1_000);
    await waitFor(() => died, 30_000, 'the cut-short chunk');
    await first.close();
    ProcessorStore.prototype.writeRows = original;
    expect(await sum('vcam.geo_10s')).toBeLessThan(unique.length);

    // Second processor: redoes what was recorded and goes on.
    const second = await startProcessorService(options());
    await waitFor(async () => (await sum('vcam.geo_10s')) >= unique.length, 60_000, 'every event counted');
    expect(await whenQuiet(() => sum('vcam.geo_10s'))).toBe(unique.length);
    const rows = await env.ch.query<{ geo_id: number; bucket: number; n: number }>('SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM vcam.geo_type_1m GROUP BY geo_id, bucket');
    expect(Object.fromEntries(rows.map((r) => [`${r.geo_id}@${r.bucket}`, Number(r.n)]))).toEqual(countPerGeoMinute(unique));
    expect(await sum('vcam.geo_10s')).toBe(unique.length);
    expect((await env.ch.query<{ n: number; d: number }>('SELECT count() AS n, uniqExact(event_id) AS d FROM vcam.events'))[0]).toEqual({ n: unique.length, d: unique.length });
    expect(await sum('vcam.device_1m', 'duplicates')).toBe(unique.length / 10);
    const redone = await second.registry.metrics();
    expect(redone).toMatch(/vcam_processor_chunks_total\{kind="redo",component="processor"\} [1-9]/);
    await second.close();
  });
});
