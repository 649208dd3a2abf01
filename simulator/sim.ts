/**
 * The running simulation: real agents (the agent library, real SQLite outboxes) fed by the
 * generator at the scenario's rate, plus one "legacy" MQTT client that publishes malformed
 * payloads straight to the bridge, as an out-of-date agent would.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { addAgent } from '../bridge/index.js';
import { agentTopic } from '../common/contract.js';
import { retry, sleep } from '../common/retry.js';
import { LibraryAgent, type AgentSpec, type SimAgent } from './agents.js';
import { Generator, type Send } from './generator.js';
import { simGeos, type SimGeo } from './geos.js';
import { Ledger } from './ledger.js';
import { planBursts, rateAt, type Burst, type Scenario } from './scenario.js';

export interface SimulationOptions {
  scenario: Scenario;
  /** Where the bridge listens; may be set after register() (verify starts the bridge in between). */
  mqttUrl: string;
  /** Agents' outboxes and the secrets file live here. */
  dataDir: string;
  /** Registers the simulated agents in this agents file (the bridge re-reads it); without it they connect without a password. */
  agentsFile?: string;
  idPrefix?: string;
  /** Starts agent number `index` (default: the agent library in this process, connected to `mqttUrl`). */
  startAgent?: (spec: AgentSpec, index: number) => Promise<SimAgent>;
}

export interface Progress {
  elapsedS: number;
  /** Sends per second over the run so far. */
  rateAchieved: number;
  sent: number;
  /** Events the bridge acknowledged (PUBACK) to the agents. */
  acknowledged: number;
  backlog: number;
  rejectedByAgents: number;
  connectedAgents: number;
  legacyPublishesFailed: number;
}

export interface SimulationEvents {
  progress: [p: Progress];
}

const TICK_MS = 20;
/** Most events handed to an agent in one call (one HTTP request for a `vcam agent` process). */
const PER_RECORD = 2_000;

export class Simulation extends EventEmitter<SimulationEvents> {
  readonly ledger: Ledger;
  readonly geos: SimGeo[];
  readonly agentIds: string[];
  readonly legacyAgentId: string;
  readonly bursts: Burst[] = [];
  private readonly generator: Generator;
  agents: SimAgent[] = [];
  /** Per agent: events its cameras have sent and it has not taken yet. */
  private queues: unknown[][] = [];
  private pumping: Promise<void>[] = [];
  private inFlight: number[] = [];
  private held: boolean[] = [];
  private legacy?: MqttClient;
  private legacyInFlight = 0;
  private legacyFailed = 0;
  private rejectedByAgents = 0;
  private startedAt = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private secrets?: Map<string, string | undefined>;

  constructor(readonly o: SimulationOptions) {
    super();
    const s = o.scenario;
    const prefix = o.idPrefix ?? 'sim';
    this.agentIds = Array.from({ length: s.agents }, (_, i) => `${prefix}-${i + 1}`);
    this.legacyAgentId = `${prefix}-legacy`;
    this.geos = simGeos(s.geos, s.seed);
    this.ledger = new Ledger(s.seed);
    this.generator = new Generator(s, this.geos, this.agentIds, this.legacyAgentId, this.ledger, Date.now().toString(36));
  }

  /**
   * Registers the simulated agents in the agents file (before the bridge starts, if it must find
   * them there). Secrets are made once per data directory, so a restarted simulation keeps its identities.
   */
  async register(): Promise<Map<string, string | undefined>> {
    if (this.secrets) return this.secrets;
    const ids = [...this.agentIds, this.legacyAgentId];
    if (!this.o.agentsFile) return (this.secrets = new Map(ids.map((id) => [id, undefined])));
    mkdirSync(this.o.dataDir, { recursive: true });
    const file = join(this.o.dataDir, 'agent-secrets.json');
    const known: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
    const registered = existsSync(this.o.agentsFile) ? readFileSync(this.o.agentsFile, 'utf8') : '';
    for (const id of ids) if (!known[id] || !registered.includes(`"${id}"`)) known[id] = await addAgent(this.o.agentsFile, id);
    writeFileSync(file, JSON.stringify(known), { mode: 0o600 });
    return (this.secrets = new Map(ids.map((id) => [id, known[id]])));
  }

  async start(): Promise<void> {
    const secrets = await this.register();
    const start = this.o.startAgent ?? (async (spec: AgentSpec) => new LibraryAgent(spec));
    this.agents = await Promise.all(this.agentIds.map((id, i) => start({ id, dataDir: join(this.o.dataDir, id), mqttUrl: this.o.mqttUrl, secret: secrets.get(id) }, i)));
    this.queues = this.agents.map(() => []);
    this.inFlight = this.agents.map(() => 0);
    this.held = this.agents.map(() => false);
    this.pumping = this.agents.map((_, i) => this.pump(i));
    this.legacy = mqtt.connect(this.o.mqttUrl, { clientId: this.legacyAgentId, username: this.legacyAgentId, password: secrets.get(this.legacyAgentId), reconnectPeriod: 500 });
  }

  /**
   * Hands an agent its cameras' events, oldest first, so an agent that is down or refusing
   * holds up only its own cameras (which retry until it takes them), never the generator.
   */
  private async pump(i: number): Promise<void> {
    const queue = this.queues[i]!;
    while (!this.abort.signal.aborted) {
      if (queue.length === 0 || this.held[i]) {
        await sleep(5);
        continue;
      }
      const events = queue.slice(0, PER_RECORD);
      this.inFlight[i]!++;
      try {
        const rejected = await retry(() => this.agents[i]!.record(events), { initialMs: 100, maxMs: 2_000, signal: this.abort.signal, isRetriable: () => true });
        this.rejectedByAgents += rejected;
        queue.splice(0, events.length);
      } catch {
        // Only an abort ends the retries.
      } finally {
        this.inFlight[i]!--;
      }
    }
  }

  /** Generates for the scenario's duration (or until stop()); resolves when generation ends. */
  async run(): Promise<void> {
    const s = this.o.scenario;
    this.startedAt = this.ledger.startedAt = Date.now();
    // A run without end still plans a day of bursts.
    this.bursts.push(...planBursts({ ...s, durationMs: Math.min(s.durationMs, 86_400_000) }, this.startedAt, this.generator.busiestGeoIds(3)));
    this.ledger.bursts = this.bursts;
    const burstWeight = new Map(this.bursts.map((b) => [b.geoId, this.generator.geoWeight(b.geoId)]));
    let due = 0;
    let burstDue = 0;
    let last = this.startedAt;
    let lastProgress = this.startedAt;
    while (!this.stopped) {
      const now = Date.now();
      const elapsed = now - this.startedAt;
      if (elapsed >= s.durationMs) break;
      const dt = (now - last) / 1000;
      last = now;
      const rate = rateAt(s, elapsed, now);
      due += rate * dt;
      const sends = this.generator.next(now, Math.floor(due));
      due -= Math.floor(due);
      const burst = this.bursts.find((b) => now >= b.fromMs && now < b.toMs);
      if (burst) {
        burstDue += rate * burstWeight.get(burst.geoId)! * (burst.factor - 1) * dt;
        sends.push(...this.generator.burst(now, burst.geoId, Math.floor(burstDue)));
        burstDue -= Math.floor(burstDue);
      }
      this.dispatch(sends);
      if (now - lastProgress >= 1_000) {
        lastProgress = now;
        this.emit('progress', this.progress());
      }
      await sleep(Math.max(0, TICK_MS - (Date.now() - now)));
    }
    this.ledger.endedAt = Date.now();
  }

  private dispatch(sends: Send[]): void {
    for (const send of sends) {
      if (send.kind === 'bad-publish') {
        // Not awaited (the PUBACK waits for the dead-letter write); one that fails (bridge gone
        // at shutdown) is counted, and shows in progress as never acknowledged.
        this.publishLegacy(send.payload).catch(() => this.legacyFailed++);
      } else this.queues[send.agent]!.push(send.event);
    }
  }

  private async publishLegacy(payload: string): Promise<void> {
    this.legacyInFlight++;
    try {
      // An agent retries a publish the broker never acknowledged (mqtt.js fails in-flight QoS 1
      // publishes of a clean session when the connection drops); a redelivered dead letter is
      // the same dead letter (its identity is its agent and bytes).
      await retry(() => this.legacy!.publishAsync(agentTopic(this.legacyAgentId), payload, { qos: 1 }), { initialMs: 200, maxMs: 2_000, signal: this.abort.signal, isRetriable: () => true });
    } finally {
      this.legacyInFlight--;
    }
  }

  progress(): Progress {
    const elapsedS = this.startedAt ? (Date.now() - this.startedAt) / 1000 : 0;
    const backlog = this.agents.reduce((n, a) => n + a.backlog, 0) + this.queues.reduce((n, q) => n + q.length, 0) + this.legacyInFlight;
    return {
      elapsedS: Math.round(elapsedS * 10) / 10,
      rateAchieved: Math.round(this.ledger.sent.total / Math.max(elapsedS, 0.001)),
      sent: this.ledger.sent.total,
      acknowledged: this.agents.reduce((n, a) => n + a.acknowledged, 0),
      backlog,
      rejectedByAgents: this.rejectedByAgents,
      connectedAgents: this.agents.filter((a) => a.connected).length,
      legacyPublishesFailed: this.legacyFailed,
    };
  }

  /** Waits until every camera's events are taken, every outbox is empty and every legacy publish acknowledged; false on timeout. */
  async drain(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && !signal?.aborted) {
      if (await this.idle()) return true;
      await sleep(100, signal);
    }
    return this.idle();
  }

  private async idle(): Promise<boolean> {
    if (this.inFlight.some((n) => n > 0) || this.progress().backlog > 0) return false;
    // Only figures read now count: a stale 0 from an agent that is restarting is no proof.
    const fresh = await Promise.all(this.agents.map((a) => a.refresh()));
    return fresh.every(Boolean) && this.progress().backlog === 0;
  }

  /** Holds agent `i`'s cameras: their events wait (in order) until released, as if the gateway were being rebuilt. */
  hold(i: number, on: boolean): void {
    this.held[i] = on;
  }

  /** Waits until agent `i` is handling no call and (with `drained`) its outbox is empty. */
  async quiet(i: number, signal?: AbortSignal, timeoutMs = 300_000, drained = true): Promise<void> {
    const agent = this.agents[i]!;
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (Date.now() > until) throw new Error(`agent ${agent.id} still held ${agent.backlog} events after ${timeoutMs / 1000} s`);
      if (this.inFlight[i] === 0) {
        const fresh = await agent.refresh();
        if (fresh && this.inFlight[i] === 0 && (!drained || agent.backlog === 0)) return;
      }
      await sleep(100, signal);
      if (signal?.aborted) return;
    }
  }

  stop(): void {
    this.stopped = true;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await Promise.all(this.pumping);
    await Promise.all(this.agents.map((a) => a.close()));
    // Forced: an in-flight publish to a bridge that is already gone must not hold the exit.
    await this.legacy?.endAsync(true);
  }
}
