import { describe, expect, it } from 'vitest';
import { costTable, simulatorUsPerEvent } from './costs.js';
import type { ProcUsage } from './procstat.js';

const usage = (cpuS: number): ProcUsage => ({ cpuS, cores: 0, rssPeakMb: 0, rssSteadyMb: 0, rssStartMb: 0 });

describe('cost table', () => {
  it('gives each stage its processes’ CPU per event, instances summed, the simulator taken out of the bench process', () => {
    const t = costTable({ self: usage(3), 'bridge-1': usage(1), 'bridge-2': usage(0.5), 'processor-1': usage(2), clickhouse: usage(4), kafka: usage(1.5), 'agent-sim-1': usage(9) }, 100_000, 'self', 5);
    expect(t).toEqual({ events: 100_000, usPerEvent: { simulator: 5, agents: 115, bridge: 15, kafka: 15, processor: 20, clickhouse: 40 }, totalUs: 210, budgetUs: 40 });
  });

  it('never gives the simulator more than the bench process used', () => {
    expect(costTable({ self: usage(0.1) }, 100_000, 'self', 5).usPerEvent).toEqual({ simulator: 1, agents: 0 });
  });

  it('measures the simulator’s own cost as a positive figure', () => {
    const us = simulatorUsPerEvent(20_000);
    expect(us).toBeGreaterThan(0);
    expect(Number.isFinite(us)).toBe(true);
  });
});
