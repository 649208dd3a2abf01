/**
 * The cost table: CPU microseconds per event for each stage of the pipeline, from each process's
 * own CPU time (/proc) over a probe's run, divided by the events sent in it. Two cores shared by
 * every stage make CPU per event, not events/s, the figure that says where the time goes: at the
 * product's goal of 50,000 events/s the whole pipeline has 40 µs per event.
 *
 * The simulator and its agents share the bench process; the simulator's part (generating events
 * and keeping the ground truth) is measured alone in the same run and the rest is the agents'.
 */
import { SCENARIO_DEFAULTS } from '../simulator/scenario.js';
import { Generator } from '../simulator/generator.js';
import { simGeos } from '../simulator/geos.js';
import { Ledger } from '../simulator/ledger.js';
import type { ProcUsage } from './procstat.js';

/** CPU per event for all stages together at 50,000 events/s on two cores, with a fifth kept spare. */
export const BUDGET_US = 40;

export type Stage = 'simulator' | 'agents' | 'bridge' | 'kafka' | 'processor' | 'clickhouse' | 'archive';

export interface CostTable {
  /** Events sent during the measured run. */
  events: number;
  usPerEvent: Partial<Record<Stage, number>>;
  totalUs: number;
  budgetUs: number;
}

/** The simulator's own CPU per event: generation and ground truth, nothing handed to an agent. */
export function simulatorUsPerEvent(events = 200_000): number {
  const s = SCENARIO_DEFAULTS;
  const generator = new Generator(s, simGeos(s.geos, s.seed), ['a-1', 'a-2', 'a-3', 'a-4'], 'a-legacy', new Ledger(s.seed), 'bench');
  // Warm-up: the first calls run unoptimised code.
  for (let i = 0; i < 20; i++) generator.next(Date.now(), 1_000);
  const start = process.cpuUsage();
  for (let n = 0; n < events; n += 1_000) generator.next(Date.now(), 1_000);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / events;
}

function stageOf(process: string, self: string): Stage | undefined {
  // `vcam agent` processes (verify --chaos) and the library agents in the bench process alike.
  if (process === self || process.startsWith('agent')) return 'agents';
  if (process.startsWith('bridge')) return 'bridge';
  if (process.startsWith('processor')) return 'processor';
  if (process === 'clickhouse' || process === 'kafka' || process === 'archive') return process;
  return undefined;
}

const round = (x: number) => Math.round(x * 10) / 10;

/**
 * `processes` as the Sampler reports them over the run; `self` is the bench process's name there
 * (simulator and agents), from which the simulator's own `simulatorUs` is taken out.
 */
export function costTable(processes: Record<string, ProcUsage>, events: number, self: string, simulatorUs: number): CostTable {
  const us: Partial<Record<Stage, number>> = {};
  for (const [name, usage] of Object.entries(processes)) {
    const stage = stageOf(name, self);
    if (stage) us[stage] = (us[stage] ?? 0) + (usage.cpuS * 1e6) / events;
  }
  const own = processes[self];
  if (own) {
    // `self` was counted as the agents' above; the simulator's share of it comes out.
    us.simulator = Math.min(simulatorUs, (own.cpuS * 1e6) / events);
    us.agents! -= us.simulator;
  }
  const order: Stage[] = ['simulator', 'agents', 'bridge', 'kafka', 'processor', 'clickhouse', 'archive'];
  const usPerEvent = Object.fromEntries(order.filter((s) => us[s] !== undefined).map((s) => [s, round(us[s]!)]));
  return { events, usPerEvent, totalUs: round(Object.values(us).reduce((a, b) => a + b, 0)), budgetUs: BUDGET_US };
}
