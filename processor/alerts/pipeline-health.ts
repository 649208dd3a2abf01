/**
 * The processor's own health as alerts: consumer lag over a threshold, ClickHouse writes
 * failing, a stall (work waiting and nothing written for a while), and data loss (Kafka no
 * longer held offsets that were never processed; stays open until someone resolves it).
 */
import type { Finding, Rule } from './book.js';

export interface HealthSnapshot {
  instance: string;
  lagEvents: number;
  lagSeconds: number;
  lastChunkAt: number;
  failingSince?: number;
  lostOffsets: { partition: number; count: number; at: number }[];
}

export interface PipelineHealthOptions {
  maxLagEvents: number;
  maxLagSeconds: number;
  stalledAfterMs: number;
}

export function pipelineHealthRule(health: () => HealthSnapshot, o: PipelineHealthOptions): Rule {
  let me = '';
  return {
    kinds: ['consumer_lag', 'clickhouse_write_failing', 'processor_stalled', 'data_loss'],
    sticky: ['data_loss'],
    // Another processor's health is its own to report and resolve.
    owns: (subject) => subject === `processor:${me}` || subject.startsWith('partition:'),
    async evaluate(now) {
      const h = health();
      me = h.instance;
      const findings: Finding[] = [];
      const who = `processor:${h.instance}`;
      if (h.lagEvents > o.maxLagEvents || h.lagSeconds > o.maxLagSeconds) {
        findings.push({ kind: 'consumer_lag', subject: who, severity: 'warning', message: `${h.lagEvents} events and ${Math.round(h.lagSeconds)} s behind (thresholds ${o.maxLagEvents} events, ${o.maxLagSeconds} s)` });
      }
      if (h.failingSince !== undefined) findings.push({ kind: 'clickhouse_write_failing', subject: who, severity: 'critical', message: `ClickHouse writes failing since ${new Date(h.failingSince).toISOString()}; consumption paused, nothing lost` });
      if (h.lagEvents > 0 && now - h.lastChunkAt > o.stalledAfterMs) findings.push({ kind: 'processor_stalled', subject: who, severity: 'critical', message: `${h.lagEvents} events waiting and nothing written for ${Math.round((now - h.lastChunkAt) / 1000)} s` });
      for (const l of h.lostOffsets) findings.push({ kind: 'data_loss', subject: `partition:${l.partition}:${l.at}`, severity: 'critical', message: `Kafka no longer held ${l.count} offsets of partition ${l.partition}: events lost before processing` });
      return findings;
    },
  };
}
