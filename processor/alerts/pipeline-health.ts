/**
 * The processor's own health as alerts: consumer lag over a threshold, ClickHouse writes
 * failing, a stall (work waiting and nothing written for a while), no member of its consumers
 * in the group (Kafka unreachable, restarts failing), and data loss (Kafka no longer held
 * offsets that were never processed; stays open until someone resolves it).
 */
import type { Finding, Rule } from './book.js';

export interface HealthSnapshot {
  instance: string;
  lagEvents: number;
  lagSeconds: number;
  lastChunkAt: number;
  failingSince?: number;
  /** A Kafka consumer of this processor that is not in its group (consumer.ts), the longest down. */
  consumerDown?: { consumer: string; since: number; error: string };
  /** `topic` only for the dead-letter topic: the events topic's are events, the other's dead letters. */
  lostOffsets: { partition: number; count: number; at: number; topic?: string }[];
  /** Partitions whose log ended before offsets already counted (held; processor.ts). */
  offsetsBackwards: { partition: number; expected: string; logEnd: string }[];
  /** Partitions whose unfinished last chunk is past ClickHouse's deduplication window (held; processor.ts). */
  replaysHeld?: { partition: number; token: string; distance: number; window: number }[];
}

export interface PipelineHealthOptions {
  maxLagEvents: number;
  maxLagSeconds: number;
  stalledAfterMs: number;
  /** A consumer out of its group this long is an alert (kafkajs' own restarts take a few seconds). */
  consumerDownAfterMs: number;
  /** A processor that wrote no status row for this long is gone: its alerts are resolved by the others. */
  goneAfterMs: number;
}

/**
 * `liveInstances(since)`: the processors that wrote a status row since then. Instances are
 * `host:pid`, so a restarted processor is a new one; without this, the alerts of the one that
 * died (a lag, a stall) stayed open for ever, since only their own instance resolved them.
 */
export function pipelineHealthRule(health: () => HealthSnapshot, o: PipelineHealthOptions, liveInstances: (since: number) => Promise<Set<string>> = async () => new Set()): Rule {
  let me = '';
  let alive = new Set<string>();
  return {
    kinds: ['consumer_lag', 'clickhouse_write_failing', 'processor_stalled', 'consumer_down', 'data_loss', 'offsets_backwards', 'replay_held'],
    sticky: ['data_loss', 'offsets_backwards', 'replay_held'],
    // Another live processor's health is its own to report and resolve; a gone one's is ours.
    owns: (subject) => subject === `processor:${me}` || subject.startsWith('partition:') || (subject.startsWith('processor:') && !alive.has(subject.slice('processor:'.length))),
    async evaluate(now) {
      const h = health();
      me = h.instance;
      alive = await liveInstances(now - o.goneAfterMs);
      const findings: Finding[] = [];
      const who = `processor:${h.instance}`;
      if (h.lagEvents > o.maxLagEvents || h.lagSeconds > o.maxLagSeconds) {
        findings.push({ kind: 'consumer_lag', subject: who, severity: 'warning', message: `${h.lagEvents} events and ${Math.round(h.lagSeconds)} s behind (thresholds ${o.maxLagEvents} events, ${o.maxLagSeconds} s)` });
      }
      if (h.failingSince !== undefined)
        findings.push({ kind: 'clickhouse_write_failing', subject: who, severity: 'critical', message: `ClickHouse writes failing since ${new Date(h.failingSince).toISOString()}; consumption paused, nothing lost` });
      if (h.lagEvents > 0 && now - h.lastChunkAt > o.stalledAfterMs)
        findings.push({ kind: 'processor_stalled', subject: who, severity: 'critical', message: `${h.lagEvents} events waiting and nothing written for ${Math.round((now - h.lastChunkAt) / 1000)} s` });
      const down = h.consumerDown;
      if (down && now - down.since >= o.consumerDownAfterMs) {
        findings.push({
          kind: 'consumer_down',
          subject: who,
          severity: 'critical',
          message: `the ${down.consumer} consumer has not been in its Kafka group since ${new Date(down.since).toISOString()} (restarting with backoff; last error: ${down.error}); nothing is lost, Kafka keeps the backlog`,
        });
      }
      for (const l of h.lostOffsets) {
        findings.push(
          l.topic
            ? {
                kind: 'data_loss',
                subject: `partition:${l.topic}:${l.partition}:${l.at}`,
                severity: 'critical',
                message: `Kafka no longer held ${l.count} offsets of ${l.topic} partition ${l.partition}: dead letters lost before they were copied into vcam.dlq`,
              }
            : { kind: 'data_loss', subject: `partition:${l.partition}:${l.at}`, severity: 'critical', message: `Kafka no longer held ${l.count} offsets of partition ${l.partition}: events lost before processing` },
        );
      }
      for (const r of h.replaysHeld ?? []) {
        findings.push({
          kind: 'replay_held',
          subject: `partition:${r.partition}:replay`,
          severity: 'critical',
          message: `partition ${r.partition} is held: its unfinished last chunk (${r.token}) is ${r.distance} deduplication blocks back, past the ${r.window} ClickHouse remembers, so replaying it could count it twice; see the runbook`,
        });
      }
      for (const b of h.offsetsBackwards) {
        findings.push({
          kind: 'offsets_backwards',
          subject: `partition:${b.partition}:backwards`,
          severity: 'critical',
          message: `Kafka's log of partition ${b.partition} ends at offset ${b.logEnd}, before offset ${b.expected} already counted (topic recreated or log truncated): the partition is held, nothing of it is counted; see the runbook`,
        });
      }
      return findings;
    },
  };
}
