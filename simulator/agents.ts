/**
 * The simulated gateways' agents, two real ways: the agent library in the simulator's process
 * (`vcam sim`, `vcam verify`: cheap, thousands of events per call), or `vcam agent` processes fed
 * over their HTTP ingest (`vcam verify --chaos`, which must kill -9 them).
 */
import { createAgent, type Agent } from '../agent/index.js';
import { freePort } from '../common/http.js';
import { parseMetrics } from '../common/metrics.js';
import { Child } from './stack.js';

export interface SimAgent {
  readonly id: string;
  /** Takes the events, or throws when it cannot now (down, outbox full): the camera retries. Resolves to how many it rejected as invalid. */
  record(events: unknown[]): Promise<number>;
  /** Events waiting in the outbox (as of the last refresh for a process). */
  readonly backlog: number;
  readonly connected: boolean;
  /** Events the bridge acknowledged (PUBACK) so far. */
  readonly acknowledged: number;
  /** Reads the figures above afresh; false when they could not be read (the figures are then stale). */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export interface AgentSpec {
  id: string;
  dataDir: string;
  mqttUrl: string;
  secret?: string;
}

export class LibraryAgent implements SimAgent {
  private readonly agent: Agent;
  acknowledged = 0;

  constructor(readonly spec: AgentSpec) {
    this.agent = createAgent({ id: spec.id, dataDir: spec.dataDir, mqttUrl: spec.mqttUrl, mqttUsername: spec.id, mqttPassword: spec.secret, outboxSync: 'normal', reconnect: { initialMs: 100, maxMs: 2_000 } });
    this.agent.on('published', (b) => (this.acknowledged += b.events));
    this.agent.start();
  }

  get id(): string {
    return this.spec.id;
  }

  async record(events: unknown[]): Promise<number> {
    return (await this.agent.record(events)).rejected.length;
  }

  get backlog(): number {
    return this.agent.stats().backlogEvents;
  }

  get connected(): boolean {
    return this.agent.connected;
  }

  async refresh(): Promise<boolean> {
    return true;
  }

  close(): Promise<void> {
    return this.agent.close(1_000);
  }
}

/** `vcam agent` as a child process; its figures come from its own /metrics. */
export class ProcessAgent implements SimAgent {
  backlog = 0;
  connected = false;
  private ackBefore = 0;
  private ackNow = 0;
  private timer?: NodeJS.Timeout;

  private constructor(
    readonly spec: AgentSpec,
    readonly proc: Child,
    private readonly base: string,
  ) {
    this.timer = setInterval(() => void this.refresh(), 500);
    this.timer.unref();
  }

  static async start(spec: AgentSpec, logDir: string, logLevel: string): Promise<ProcessAgent> {
    const port = await freePort();
    const args = ['agent', '--id', spec.id, '--data-dir', spec.dataDir, '--mqtt-url', spec.mqttUrl, '--mqtt-username', spec.id, '--http-port', String(port), '--outbox-sync', 'normal', '--log-level', logLevel];
    if (spec.secret) args.push('--mqtt-password', spec.secret);
    const base = `http://127.0.0.1:${port}`;
    const proc = new Child(`agent-${spec.id}`, args, logDir, `${base}/healthz`, `${base}/metrics`);
    try {
      await proc.healthy();
    } catch (err) {
      await proc.kill9();
      throw err;
    }
    return new ProcessAgent(spec, proc, base);
  }

  get id(): string {
    return this.spec.id;
  }

  /** A restarted process counts from 0 again: what it counted before is kept. */
  get acknowledged(): number {
    return this.ackBefore + this.ackNow;
  }

  async record(events: unknown[]): Promise<number> {
    const res = await fetch(`${this.base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events), signal: AbortSignal.timeout(30_000) });
    const body = (await res.json()) as { accepted?: number; rejected?: unknown[]; message?: string };
    // 400 with an `accepted` count: the valid events were taken and the rest rejected one by one.
    if (res.status === 202 || (res.status === 400 && typeof body.accepted === 'number')) return body.rejected?.length ?? 0;
    throw new Error(`agent ${this.id}: HTTP ${res.status} ${body.message ?? ''}`);
  }

  async refresh(): Promise<boolean> {
    try {
      const { sums } = parseMetrics(await (await fetch(`${this.base}/metrics`, { signal: AbortSignal.timeout(2_000) })).text());
      this.backlog = sums.get('vcam_agent_backlog_events') ?? 0;
      this.connected = (sums.get('vcam_agent_connected') ?? 0) > 0;
      const ack = sums.get('vcam_agent_events_published_total') ?? 0;
      if (ack < this.ackNow) this.ackBefore += this.ackNow;
      this.ackNow = ack;
      return true;
    } catch {
      // Down (killed, restarting): the last figures stand, and it is not connected.
      this.connected = false;
      return false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.proc.stop(10_000);
  }
}
