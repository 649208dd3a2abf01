/**
 * `vcam verify --chaos`, short: 60 s in Kafka mode with every kind of fault (kill -9 of agents,
 * bridges and processors, ClickHouse stopped, the Kafka broker down, an agent cut off and
 * rebuilt from an old outbox copy). Counts must still be exact, and every fault must have opened
 * an alert in Prometheus that later resolved. The 5-minute, 10k events/s run is `npm run chaos`.
 */
import { describe, expect, it } from 'vitest';
import { runVerify } from './helpers/verify.js';

const SHORT = [
  '--chaos',
  '--log-level',
  'warn',
  '--rate',
  '2000',
  '--duration',
  '60s',
  '--seed',
  '3',
  '--retry-share',
  '0.09',
  '--old-resend-share',
  '0.01',
  '--late-share',
  '0.05',
  '--malformed-share',
  '0.01',
  '--hot-horizon',
  '10s',
  '--chaos-cut',
  '15s',
  '--chaos-kills',
  '6',
  '--chaos-clickhouse-outage',
  '20s',
  '--chaos-kafka-outage',
  '12s',
  '--chaos-pause-max',
  '6s',
];

describe('vcam verify --chaos', () => {
  it('stays exact through kill -9s, a ClickHouse stop, a Kafka outage and a rebuilt agent, and every fault raises an alert that resolves', async () => {
    const { code, report: r } = await runVerify(SHORT);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(code).toBe(0);
    expect(r.unique).toBeGreaterThan(80_000);
    expect([r.lost, r.doubleCounted]).toEqual([0, 0]);
    expect(r.counted).toBe(r.unique);
    expect(r.dlqCounted).toBe(r.dlqExpected);
    expect(r.dlqExpected).toBeGreaterThan(100);
    const c = r.chaos!;
    expect(c.seed).toBe(3);
    expect(c.faultsInjected).toEqual({ kill: 6, 'clickhouse-stop': 1, 'kafka-down': 1, 'agent-cut': 1, 'outbox-restore': 1 });
    for (const f of c.faults) {
      expect(f.recoveryS, `${f.kind} ${f.target}`).not.toBeNull();
      expect(f.alert?.resolvedAtS, `${f.kind} ${f.target}`).toBeGreaterThan(f.alert!.openedAtS);
    }
    // The rebuilt agent re-sent its old backlog, beyond the hot horizon, and none of it counted twice.
    expect(c.resentFromOldOutbox).toBeGreaterThan(1_000);
    expect(c.maxAgentBacklog).toBeGreaterThan(1_000);
    expect(c.maxLagEvents).toBeGreaterThan(0);
  }, 900_000);
});
