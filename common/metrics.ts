/**
 * Prometheus plumbing. Each component instance owns its own registry (several agents can run
 * in one process, as in tests and the simulator) and turns its typed events into metrics in
 * one place (its `metrics.ts`), instead of scattering counters through the logic.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export function createRegistry(defaultLabels: Record<string, string> = {}, processMetrics = false): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(defaultLabels);
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: 'vcam_' });
  return registry;
}

/** Latency buckets (seconds) from 1 ms to 30 s: fits MQTT acks, Kafka produces and ClickHouse writes. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

/** Sums of the series of each metric name in a Prometheus text exposition. */
export function parseMetrics(text: string): { sums: Map<string, number>; labels: Map<string, string> } {
  const sums = new Map<string, number>();
  const labels = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + value);
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) if (!labels.has(k!)) labels.set(k!, v!);
  }
  return { sums, labels };
}
