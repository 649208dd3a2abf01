/** Turns the bridge's events into Prometheus metrics and log lines, in one place. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../common/metrics.js';
import type { Logger } from '../common/log.js';
import type { Bridge } from './bridge.js';

export function instrumentBridge(bridge: Bridge, registry: Registry, log: Logger): void {
  const r = [registry];
  new Gauge({
    name: 'vcam_bridge_connected_agents',
    help: 'Agents connected now',
    registers: r,
    collect() {
      this.set(bridge.connectedAgents);
    },
  });
  new Gauge({
    name: 'vcam_bridge_inflight_events',
    help: 'Events accepted from agents and not yet safe downstream',
    registers: r,
    collect() {
      this.set(bridge.inFlightEvents);
    },
  });
  new Gauge({
    name: 'vcam_bridge_inflight_publishes',
    help: 'Publishes whose PUBACK is withheld until downstream has them',
    registers: r,
    collect() {
      this.set(bridge.publishesInFlight);
    },
  });
  const connections = new Counter({ name: 'vcam_bridge_connections_total', help: 'Agent connections by result', labelNames: ['result'], registers: r });
  const publishes = new Counter({ name: 'vcam_bridge_publishes_total', help: 'Publishes by result (acked: PUBACK sent; refused: ACL or shutdown; abandoned: agent left before downstream had them)', labelNames: ['result'], registers: r });
  const forwarded = new Counter({ name: 'vcam_bridge_events_forwarded_total', help: 'Valid events safe downstream', labelNames: ['downstream'], registers: r });
  const rejected = new Counter({ name: 'vcam_bridge_events_rejected_total', help: 'Events (or whole payloads) sent to the dead-letter topic, by reason', labelNames: ['reason'], registers: r });
  const failures = new Counter({
    name: 'vcam_bridge_forward_failures_total',
    help: 'Downstream writes that failed and are being retried (PUBACK withheld), and failed attempts to reach the downstream at start-up (agents not yet accepted)',
    registers: r,
  });
  const tooLarge = new Counter({ name: 'vcam_bridge_packets_too_large_total', help: 'Connections closed for an MQTT packet over the size limit', registers: r });
  const latency = new Histogram({ name: 'vcam_bridge_forward_seconds', help: 'From publish received to safe downstream (the PUBACK delay), including retries', buckets: LATENCY_BUCKETS, registers: r });

  bridge.on('connected', (agentId) => {
    connections.inc({ result: 'accepted' });
    log.info({ agentId }, 'agent connected');
  });
  bridge.on('disconnected', (agentId) => log.info({ agentId }, 'agent disconnected'));
  bridge.on('refused', (clientId, reason) => {
    connections.inc({ result: reason });
    log.warn({ clientId, reason }, 'connection refused');
  });
  bridge.on('aclDenied', (agentId, what) => {
    publishes.inc({ result: 'refused' });
    log.warn({ agentId, what }, 'refused by ACL; connection closed');
  });
  bridge.on('packetTooLarge', (agentId, bytes) => {
    tooLarge.inc();
    log.warn({ agentId, bytes }, 'MQTT packet over the size limit; connection closed');
  });
  bridge.on('forwarded', (f) => {
    publishes.inc({ result: 'acked' });
    forwarded.inc({ downstream: bridge.downstreamKind }, f.events);
    for (const [reason, n] of f.rejects) rejected.inc({ reason }, n);
    if (f.rejects.size) log.info({ agentId: f.agentId, rejects: Object.fromEntries(f.rejects) }, 'invalid events sent to the dead-letter topic');
    latency.observe(f.latencyMs / 1000);
    if (f.attempts > 1) log.info({ agentId: f.agentId, attempts: f.attempts, latencyMs: f.latencyMs }, 'downstream write succeeded after retries; PUBACK sent');
  });
  let lastWarned = 0;
  bridge.on('forwardFailed', (err, agentId, attempt, retryInMs) => {
    failures.inc();
    const now = Date.now();
    if (now - lastWarned < 10_000) return;
    lastWarned = now;
    log.warn({ err: err.message, agentId, attempt, retryInMs }, 'downstream write failed; withholding PUBACK and retrying');
  });
  // Started while the downstream is away: nothing can be forwarded, the same failure to an operator.
  bridge.on('downstreamWaiting', (err, attempt, retryInMs) => {
    failures.inc();
    log.warn({ err: err.message, attempt, retryInMs }, `waiting for the downstream (${bridge.downstreamKind}) before accepting agents`);
  });
  const internal = new Counter({ name: 'vcam_bridge_internal_errors_total', help: 'Exceptions after a publish was handled (a listener or aedes threw); the publish itself was acknowledged once', labelNames: ['where'], registers: r });
  bridge.on('internalError', (err, where) => {
    internal.inc({ where });
    log.error({ err, where }, 'internal error after handling a publish');
  });
  bridge.on('abandoned', (agentId, events) => {
    publishes.inc({ result: 'abandoned' });
    log.info({ agentId, events }, 'agent left while its publish was pending; it will re-send');
  });
}
