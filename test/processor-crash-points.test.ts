/**
 * kill -9 of the processor at the points its exactly-once effect depends on, chosen through a
 * test hook (VCAM_CRASH_AT, common/crash.ts) instead of a timer: after the chunk is recorded and
 * before its data, between two of its inserts, after its inserts and before the offset commit,
 * and after the commit. Restarted without the hook, the counts are exact each time.
 */
import { describe, expect, it } from 'vitest';
import { freePort, waitFor, whenQuiet } from './helpers/brokers.js';
import { countPerGeoMinute, pipelineEvents, produceEvents, withDuplicates } from './helpers/events.js';
import { vcam, waitHealthy } from './helpers/processes.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const env = useKafkaAndClickHouse(4);
const TABLES = ['vcam.events', 'vcam.geo_10s', 'vcam.geo_type_1m', 'vcam.device_1m', 'vcam.chunks', 'vcam.chunk_rows', 'vcam.dlq'];
/** Every case's events stay in the topic; each case counts the whole topic again into emptied tables. */
const produced: ReturnType<typeof pipelineEvents> = [];

const sum = async (table: string, column = 'events') => Number((await env.ch.query<{ n: string }>(`SELECT sum(${column}) AS n FROM ${table}`))[0]!.n);

describe('processor killed at a chosen point of a chunk', () => {
  // The third insert of the process is the first chunk's geo_type_1m: after its events and geo_10s.
  it.each(['chunk-recorded:1', 'chunk-insert:3', 'chunk-written:1', 'chunk-committed:1'])('at %s: restarted, every event counted once', { timeout: 120_000 }, async (point) => {
    for (const t of TABLES) await env.ch.client.command({ query: `TRUNCATE TABLE ${t}` });
    const unique = pipelineEvents(4_000, { prefix: `${point.replace(/\W/g, '')}-` });
    produced.push(...unique);
    await produceEvents(env.kafka.brokers, withDuplicates(unique), 500);
    const port = await freePort();
    const group = `g-${point.replace(/\W/g, '')}`;
    const args = ['processor', '--kafka-brokers', env.kafka.bootstrap, ...env.ch.args, '--group', group, '--http-port', String(port), '--log-level', 'warn', '--hot-horizon', '2m', '--session-timeout', '3s'];

    const crashing = vcam(args, { VCAM_CRASH_AT: point });
    expect(await crashing.exited).toBe('SIGKILL');
    const proc = vcam(args);
    try {
      await waitHealthy(port, proc, 60_000);
      await waitFor(async () => (await sum('vcam.geo_10s')) >= produced.length, 90_000, 'every event counted after the restart');
      expect(await whenQuiet(() => sum('vcam.geo_10s'))).toBe(produced.length);
      const rows = await env.ch.query<{ geo_id: number; bucket: number; n: string }>('SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM vcam.geo_type_1m GROUP BY geo_id, bucket');
      expect(Object.fromEntries(rows.map((r) => [`${r.geo_id}@${r.bucket}`, Number(r.n)]))).toEqual(countPerGeoMinute(produced));
      const [raw] = await env.ch.query<{ n: string; d: string }>('SELECT count() AS n, uniqExact(event_id) AS d FROM vcam.events');
      expect([Number(raw!.n), Number(raw!.d)]).toEqual([produced.length, produced.length]);
      expect(await sum('vcam.device_1m', 'duplicates')).toBe(produced.length / 10);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
});
