/**
 * kill -9 of the processor process at random points of a stream (before, during and after its
 * ClickHouse writes and offset commits), restarted each time: the counts are still exact.
 */
import { describe, expect, it } from 'vitest';
import { freePort, waitFor, whenQuiet } from './helpers/brokers.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';
import { countPerGeoMinute, pipelineEvents, produceEvents, withDuplicates } from './helpers/events.js';
import { vcam, waitHealthy, type Proc } from './helpers/processes.js';

const env = useKafkaAndClickHouse(16);

const SEED = Number(process.env.VCAM_CRASH_SEED ?? 7);
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

describe('processor crash', () => {
  it(`survives repeated kill -9 mid-stream with exact counts (seed ${SEED})`, { timeout: 150_000 }, async () => {
    const unique = pipelineEvents(20_000, { prefix: 'k' });
    const port = await freePort();
    const start = () =>
      vcam(['processor', '--kafka-brokers', env.kafka.bootstrap, ...env.ch.args, '--http-port', String(port), '--log-level', 'warn', '--hot-horizon', '2m'], {
        // A short session, so a killed member leaves the group soon.
        VCAM_SESSION_TIMEOUT: '3s',
      });
    const counted = async () => Number((await env.ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_type_1m'))[0]!.n);

    let proc: Proc = start();
    await waitHealthy(port, proc);
    const producing = produceEvents(env.kafka.brokers, withDuplicates(unique), 200, 40);
    const rand = rng(SEED);
    let kills = 0;
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500 + rand() * 2_000));
      proc.child.kill('SIGKILL');
      await proc.exited;
      kills++;
      proc = start();
      await waitHealthy(port, proc);
    }
    await producing;
    await waitFor(async () => (await counted()) >= unique.length, 90_000, 'every distinct event counted');
    expect(await whenQuiet(counted)).toBe(unique.length);
    expect(kills).toBe(4);

    const rows = await env.ch.query<{ geo_id: number; bucket: number; n: number }>('SELECT geo_id, toUnixTimestamp(bucket) AS bucket, sum(events) AS n FROM vcam.geo_type_1m GROUP BY geo_id, bucket');
    const got: Record<string, number> = {};
    for (const r of rows) got[`${r.geo_id}@${r.bucket}`] = Number(r.n);
    expect(got).toEqual(countPerGeoMinute(unique));
    expect(Number((await env.ch.query<{ n: number }>('SELECT sum(events) AS n FROM vcam.geo_10s'))[0]!.n)).toBe(unique.length);
    expect((await env.ch.query<{ n: number; d: number }>('SELECT count() AS n, uniqExact(event_id) AS d FROM vcam.events'))[0]).toEqual({ n: unique.length, d: unique.length });
    expect(Number((await env.ch.query<{ n: number }>('SELECT sum(duplicates) AS n FROM vcam.device_1m'))[0]!.n)).toBe(unique.length / 10);

    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});
