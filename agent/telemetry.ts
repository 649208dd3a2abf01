/** Turns the agent's events into Prometheus metrics and log lines, in one place. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../common/metrics.js';
import type { Logger } from '../common/log.js';
import type { Agent } from './agent.js';

export function instrumentAgent(agent: Agent, registry: Registry, log: Logger): void {
  const accepted = new Counter({ name: 'vcam_agent_events_accepted_total', help: 'Events committed to the outbox', registers: [registry] });
  const duplicates = new Counter({ name: 'vcam_agent_events_duplicate_total', help: 'Accepted events whose eventId was already waiting in the outbox (camera retries)', registers: [registry] });
  const rejected = new Counter({ name: 'vcam_agent_events_rejected_total', help: 'Events or requests refused, by reason', labelNames: ['reason'], registers: [registry] });
  const dropped = new Counter({ name: 'vcam_agent_events_dropped_total', help: 'Events removed from the outbox unsent (overflow under drop-oldest, or expired by age)', labelNames: ['reason'], registers: [registry] });
  const published = new Counter({ name: 'vcam_agent_events_published_total', help: 'Events acknowledged by the broker (PUBACK) and removed from the outbox', registers: [registry] });
  const publishes = new Counter({ name: 'vcam_agent_publishes_total', help: 'MQTT publishes acknowledged', registers: [registry] });
  const publishBytes = new Counter({ name: 'vcam_agent_published_bytes_total', help: 'Payload bytes acknowledged', registers: [registry] });
  const publishFailures = new Counter({ name: 'vcam_agent_publish_failures_total', help: 'Publishes that failed (the events stay in the outbox)', registers: [registry] });
  const reconnects = new Counter({ name: 'vcam_agent_disconnects_total', help: 'Broker connections lost or refused', registers: [registry] });
  const ackLatency = new Histogram({ name: 'vcam_agent_publish_ack_seconds', help: 'Time from publish to PUBACK', buckets: LATENCY_BUCKETS, registers: [registry] });
  new Gauge({
    name: 'vcam_agent_connected',
    help: '1 while connected to the broker',
    registers: [registry],
    collect() {
      this.set(agent.connected ? 1 : 0);
    },
  });
  const backlog = () => agent.outbox.stats();
  new Gauge({
    name: 'vcam_agent_backlog_events',
    help: 'Events waiting in the outbox',
    registers: [registry],
    collect() {
      this.set(backlog().events);
    },
  });
  new Gauge({
    name: 'vcam_agent_backlog_bytes',
    help: 'Bytes waiting in the outbox',
    registers: [registry],
    collect() {
      this.set(backlog().bytes);
    },
  });
  new Gauge({
    name: 'vcam_agent_oldest_unsent_age_seconds',
    help: 'Age of the oldest event not yet acknowledged by the broker',
    registers: [registry],
    collect() {
      this.set(backlog().oldestAgeMs / 1000);
    },
  });

  agent.on('accepted', (stored, dups) => {
    accepted.inc(stored + dups);
    if (dups) duplicates.inc(dups);
  });
  agent.on('rejected', (reason, count) => {
    rejected.inc({ reason }, count);
    if (reason === 'outbox_full') log.warn({ count }, 'outbox full: refusing new events (policy reject)');
  });
  agent.on('dropped', (count, reason) => {
    dropped.inc({ reason }, count);
    log.warn({ count, reason }, reason === 'expired' ? 'expired events older than the outbox age limit' : 'outbox full: dropped the oldest events (policy drop-oldest)');
  });
  agent.on('published', (b) => {
    published.inc(b.events);
    publishes.inc();
    publishBytes.inc(b.bytes);
    ackLatency.observe(b.latencyMs / 1000);
  });
  agent.on('publishFailed', (err) => {
    publishFailures.inc();
    log.warn({ err: err.message }, 'publish failed; events stay in the outbox and are re-sent');
  });
  // While the broker stays unreachable, say so once a minute rather than on every retry.
  let lastWarned = 0;
  agent.on('connected', () => {
    lastWarned = 0;
    log.info({ backlog: backlog().events }, 'connected to broker');
  });
  agent.on('disconnected', (reason, retryInMs) => {
    reconnects.inc();
    const now = Date.now();
    const level = now - lastWarned >= 60_000 ? 'warn' : 'debug';
    if (level === 'warn') lastWarned = now;
    log[level]({ reason, retryInMs, backlog: backlog().events }, 'no broker connection; events stay in the outbox, retrying');
  });
}
