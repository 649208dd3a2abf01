/** `vcam sim` against a plain broker: real agents deliver exactly the ledger's distinct events, and the files it promises exist. */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGeoCsv } from '../clickhouse/index.js';
import { Ledger, type LedgerJson } from '../simulator/ledger.js';
import { startMosquitto } from './helpers/brokers.js';
import { vcam } from './helpers/processes.js';

let broker: Awaited<ReturnType<typeof startMosquitto>>;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(() => broker?.stop());

describe('vcam sim', () => {
  it('publishes every distinct event of its ledger through real agents, writes the ledger and geo CSV, prints JSON', async () => {
    const ids = new Set<string>();
    const perGeo = new Map<number, Set<string>>();
    let legacyPublishes = 0;
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'sim-test-sub' });
    sub.on('message', (topic, payload) => {
      if (topic.endsWith('/sim-legacy/events')) return void legacyPublishes++;
      for (const e of (JSON.parse(payload.toString()) as { events: { eventId: string; geoId: number }[] }).events) {
        ids.add(e.eventId);
        let g = perGeo.get(e.geoId);
        if (!g) perGeo.set(e.geoId, (g = new Set()));
        g.add(e.eventId);
      }
    });
    await sub.subscribeAsync('vcam/v1/agents/+/events', { qos: 1 });

    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-sim-test-'));
    const sim = vcam(['sim', '--mqtt-url', broker.url, '--data-dir', dataDir, '--rate', '2000', '--duration', '4s', '--geos', '12', '--cameras', '60', '--malformed-share', '0.02', '--no-progress']);
    let out = '';
    sim.child.stdout!.on('data', (d) => (out += d));
    expect(await sim.exited).toBe(0);
    const summary = JSON.parse(out) as { drained: boolean; unique: number; sent: number; ledger: string; geoCsv: string; rejectedByAgents: number; malformed: { rejectedByAgent: number; deadLetters: number } };
    expect(summary.drained).toBe(true);
    expect(summary.sent).toBeGreaterThan(7_000);
    // Progress went to stderr as JSON lines while not on a terminal.
    expect(sim.stderr()).toMatch(/"phase":"running","elapsedS"/);

    const ledger = Ledger.fromJSON(JSON.parse(readFileSync(summary.ledger, 'utf8')) as LedgerJson);
    await new Promise((r) => setTimeout(r, 500));
    await sub.endAsync();
    expect(ids.size).toBe(ledger.unique);
    expect(new Map([...perGeo].map(([g, s]) => [g, s.size]))).toEqual(ledger.perGeo());
    expect(summary.rejectedByAgents).toBe(ledger.malformed.rejectedByAgent);
    expect(legacyPublishes).toBe(ledger.malformed.deadLetters);
    expect(ledger.malformed.deadLetters).toBeGreaterThan(0);

    expect(existsSync(summary.geoCsv)).toBe(true);
    const geos = parseGeoCsv(readFileSync(summary.geoCsv, 'utf8'));
    expect(geos).toHaveLength(12);
    expect(new Set(geos.map((g) => g.geo_id))).toEqual(new Set(ledger.perGeo().keys()));
  });

  it('refuses impossible knobs with a reason, exit 2', async () => {
    const sim = vcam(['sim', '--retry-share', '1.5']);
    expect(await sim.exited).toBe(2);
    expect(sim.stderr()).toMatch(/--retry-share must be between 0 and 1/);
    const sim2 = vcam(['sim', '--cameras', '3', '--geos', '10']);
    expect(await sim2.exited).toBe(2);
    expect(sim2.stderr()).toMatch(/every geo needs a camera/);
  });

  it('refuses a duration without a unit (once `--duration 30` ran verify for 30 ms and reported success), exit 2, naming the fix', async () => {
    for (const cmd of ['verify', 'sim']) {
      const p = vcam([cmd, '--duration', '30']);
      expect(await p.exited, cmd).toBe(2);
      expect(p.stderr(), cmd).toMatch(/--duration: "30" is not a duration without a unit: write 30s \(or 30ms, 30m\)/);
    }
  });
});
