/** The chaos schedule: a pure function of the seed, with every fault the issue asks for. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../common/errors.js';
import { planFaults, type ChaosOptions } from './chaos.js';

const targets = { agents: ['agent-sim-1', 'agent-sim-2', 'agent-sim-3', 'agent-sim-4'], bridges: ['bridge-1', 'bridge-2'], processors: ['processor-1', 'processor-2'] };
const long: ChaosOptions = { kills: 20, clickhouseOutageMs: 60_000, kafkaOutageMs: 30_000, cutMs: 90_000, pauseMinMs: 3_000, pauseMaxMs: 10_000 };
const FIVE_MIN = 5 * 60_000;

describe('planFaults', () => {
  it('replays the same schedule for the same seed, and another for another seed', () => {
    const a = planFaults(7, FIVE_MIN, 60_000, targets, long);
    expect(planFaults(7, FIVE_MIN, 60_000, targets, long)).toEqual(a);
    expect(planFaults(8, FIVE_MIN, 60_000, targets, long)).not.toEqual(a);
  });

  it('plans 20 kills over agents, bridges and processors, one ClickHouse stop, one Kafka outage, one cut and one outbox restore', () => {
    const plan = planFaults(1, FIVE_MIN, 60_000, targets, long);
    const kills = plan.filter((f) => f.kind === 'kill');
    expect(kills).toHaveLength(20);
    const killed = new Set(kills.map((k) => k.target.replace(/-\d+$|-sim-\d+$/, '')));
    expect([...killed].sort()).toEqual(['agent', 'bridge', 'processor']);
    // The cut-off agent is never killed at random: its outbox is being copied and restored.
    expect(kills.some((k) => k.target === 'agent-sim-4')).toBe(false);
    for (const k of kills) {
      expect(k.durationMs).toBeGreaterThanOrEqual(3_000);
      expect(k.durationMs).toBeLessThanOrEqual(10_000);
    }
    expect(plan.filter((f) => f.kind === 'clickhouse-stop').map((f) => f.durationMs)).toEqual([60_000]);
    expect(plan.filter((f) => f.kind === 'kafka-down').map((f) => f.durationMs)).toEqual([30_000]);
    const cut = plan.find((f) => f.kind === 'agent-cut')!;
    const restore = plan.find((f) => f.kind === 'outbox-restore')!;
    expect(cut.target).toBe('agent-sim-4');
    // Re-sends come from events older than the hot horizon.
    expect(restore.atMs - (cut.atMs + cut.durationMs)).toBeGreaterThan(60_000);
    for (const f of plan) expect(f.atMs + f.durationMs).toBeLessThanOrEqual(0.95 * FIVE_MIN);
  });

  it('keeps the two outages apart, and never kills a component that is still down', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planFaults(seed, FIVE_MIN, 60_000, targets, long);
      const ch = plan.find((f) => f.kind === 'clickhouse-stop')!;
      const kafka = plan.find((f) => f.kind === 'kafka-down')!;
      expect(ch.atMs + ch.durationMs).toBeLessThanOrEqual(kafka.atMs);
      const byTarget = new Map<string, number>();
      for (const k of plan.filter((f) => f.kind === 'kill')) {
        expect(k.atMs, `seed ${seed} ${k.target}`).toBeGreaterThanOrEqual(byTarget.get(k.target) ?? 0);
        byTarget.set(k.target, k.atMs + k.durationMs);
      }
    }
  });

  it('refuses a run too short for the cut, the hot horizon and the re-send', () => {
    expect(() => planFaults(1, 60_000, 60_000, targets, long)).toThrow(ConfigError);
    expect(() => planFaults(1, 60_000, 60_000, targets, long)).toThrow(/too short for chaos/);
  });
});
