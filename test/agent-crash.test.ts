/** kill -9 of the agent process mid-stream, then a restart: no event lost, no event given a new id. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, freePort, startAedes } from './helpers/brokers.js';
import { vcam, waitHealthy, type Proc } from './helpers/processes.js';

let broker: Awaited<ReturnType<typeof startAedes>>;
beforeAll(async () => {
  broker = await startAedes();
});
afterAll(() => broker.stop());

describe('agent crash', () => {
  it('after kill -9 and restart, every acknowledged event arrives and retried requests get the same ids', async () => {
    const sub = await collect(broker.url);
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-crash-'));
    const port = await freePort();
    const args = ['agent', '--id', 'gw-crash', '--data-dir', dataDir, '--http-port', String(port), '--mqtt-url', broker.url, '--log-level', 'warn', '--batch-max-events', '20', '--max-in-flight', '1'];
    let proc: Proc = vcam(args);
    await waitHealthy(port, proc);

    const base = Date.now() - 30_000;
    const request = (r: number) =>
      Array.from({ length: 50 }, (_, i) => {
        const n = r * 50 + i;
        // A third of the cameras send their own ids; the rest rely on derived ids.
        return n % 3 === 0 ? { eventId: `own-${n}`, deviceId: `cam-${n % 11}`, geoId: n % 4, ts: base + n, type: 'person' } : { deviceId: `cam-${n % 11}`, geoId: n % 4, ts: base + n, type: 'vehicle' };
      });
    const post = (r: number) =>
      fetch(`http://127.0.0.1:${port}/v1/events`, { method: 'POST', body: JSON.stringify(request(r)), headers: { 'content-type': 'application/json' } }).then(
        async (res) => (res.status === 202 ? ((await res.json()) as { eventIds: string[] }).eventIds : undefined),
        () => undefined,
      );

    const acked = new Map<number, string[]>();
    const failed: number[] = [];
    const REQUESTS = 120;
    // Keep 8 requests in flight and kill the agent while they, and publishes, are under way.
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < REQUESTS) {
        const r = next++;
        if (r === 60 && !killed) {
          killed = true;
          proc.child.kill('SIGKILL');
        }
        const ids = await post(r);
        if (ids) acked.set(r, ids);
        else failed.push(r);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(await proc.exited).toBe('SIGKILL');
    expect(failed.length).toBeGreaterThan(0);

    proc = vcam(args);
    await waitHealthy(port, proc);
    // The cameras retry what was not acknowledged. Some of it was committed before the kill:
    // it must come back under the same ids, not new ones.
    for (const r of failed) {
      const ids = await post(r);
      expect(ids).toBeDefined();
      acked.set(r, ids!);
    }
    const expected = new Set([...acked.values()].flat());
    expect(expected.size).toBe(REQUESTS * 50);
    await sub.waitFor(() => new Set(sub.events.map((e) => e.eventId)).size >= expected.size, 30_000, 'every event at the broker');
    const arrived = new Set(sub.events.map((e) => e.eventId));
    expect(arrived).toEqual(expected);
    // Re-sent after the crash or not, an event keeps one id: per eventId, one ts.
    const tsById = new Map<string, number>();
    for (const e of sub.events) {
      expect(tsById.get(e.eventId) ?? e.ts).toBe(e.ts);
      tsById.set(e.eventId, e.ts);
    }

    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    await sub.stop();
  });
});
