/**
 * The agent: validates camera events, gives each a stable eventId, commits them to the outbox
 * and publishes them. `record()` is the library API; the HTTP ingest is a thin layer over it.
 */
import { EventEmitter } from 'node:events';
import { definedOnly } from '../common/config.js';
import { checkCameraEvent, stableEventId, type RejectReason } from '../common/contract.js';
import { VcamError } from '../common/errors.js';
import type { BackoffOptions } from '../common/retry.js';
import { Outbox, type FullPolicy, type Pending } from './outbox.js';
import { Publisher } from './publisher.js';

export interface AgentOptions {
  id: string;
  dataDir: string;
  mqttUrl: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttProtocol?: 4 | 5;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  mqttInsecure?: boolean;
  outboxMaxEvents?: number;
  outboxMaxBytes?: number;
  outboxMaxAgeMs?: number;
  outboxFullPolicy?: FullPolicy;
  outboxSync?: 'full' | 'normal';
  batchMaxEvents?: number;
  batchMaxBytes?: number;
  maxInFlight?: number;
  reconnect?: BackoffOptions;
}

export interface RecordResult {
  /** One entry per input, in order: the assigned eventId, or null where the event was rejected. */
  eventIds: (string | null)[];
  accepted: number;
  /** Accepted events whose eventId was already waiting in the outbox (a camera's retry). */
  duplicates: number;
  rejected: { index: number; reason: RejectReason; message: string }[];
}

export interface AgentEvents {
  accepted: [stored: number, duplicates: number];
  rejected: [reason: RejectReason | 'body_too_large' | 'outbox_full' | 'unsupported_media_type' | 'forbidden_origin' | 'unauthorized', count: number];
  dropped: [count: number, reason: 'overflow' | 'expired'];
  published: [batch: { events: number; bytes: number; firstSeq: number; lastSeq: number; latencyMs: number }];
  publishFailed: [err: Error];
  connected: [];
  disconnected: [reason: string, retryInMs: number];
}

export const AGENT_DEFAULTS = {
  mqttProtocol: 4,
  outboxMaxEvents: 10_000_000,
  outboxMaxBytes: 4 * 1024 ** 3,
  outboxMaxAgeMs: 7 * 86_400_000,
  outboxFullPolicy: 'reject',
  outboxSync: 'full',
  batchMaxEvents: 6_000,
  batchMaxBytes: 768 * 1024,
  maxInFlight: 4,
} as const;

export class Agent extends EventEmitter<AgentEvents> {
  readonly id: string;
  readonly outbox: Outbox;
  private readonly publisher: Publisher;
  private expiryTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;

  constructor(options: AgentOptions) {
    super();
    const o = { ...AGENT_DEFAULTS, ...definedOnly(options) };
    this.id = o.id;
    this.outbox = new Outbox({
      dataDir: o.dataDir,
      agentId: o.id,
      maxEvents: o.outboxMaxEvents,
      maxBytes: o.outboxMaxBytes,
      maxAgeMs: o.outboxMaxAgeMs,
      fullPolicy: o.outboxFullPolicy,
      sync: o.outboxSync,
    });
    this.outbox.on('dropped', (count, reason) => this.emit('dropped', count, reason));
    this.publisher = new Publisher(
      this.outbox,
      {
        agentId: o.id,
        url: o.mqttUrl,
        username: o.mqttUsername,
        password: o.mqttPassword,
        protocolVersion: o.mqttProtocol,
        caFile: o.mqttCa,
        certFile: o.mqttCert,
        keyFile: o.mqttKey,
        insecure: o.mqttInsecure,
        maxBatchEvents: o.batchMaxEvents,
        maxBatchBytes: o.batchMaxBytes,
        maxInFlight: o.maxInFlight,
        connectTimeoutMs: 10_000,
        keepaliveS: 30,
        backoff: { initialMs: 200, maxMs: 30_000, jitter: 0.5, ...o.reconnect },
      },
      {
        connected: () => this.emit('connected'),
        disconnected: (reason, retryInMs) => this.emit('disconnected', reason, retryInMs),
        published: (batch) => this.emit('published', batch),
        publishFailed: (err) => this.emit('publishFailed', err),
      },
    );
  }

  /** Connects to the broker and starts publishing whatever the outbox holds. */
  start(): this {
    this.publisher.start();
    if (this.outbox.options.maxAgeMs > 0) {
      const every = Math.min(10_000, Math.max(100, this.outbox.options.maxAgeMs / 10));
      this.expiryTimer = setInterval(() => this.outbox.expireOld(), every).unref();
    }
    return this;
  }

  /**
   * Validates, assigns ids and commits. Resolves after the commit, so a caller that got an
   * eventId back can rely on the event being delivered. Rejects with OUTBOX_FULL (retriable)
   * when the outbox is full under the reject policy; nothing of that call is stored then.
   */
  async record(inputs: readonly unknown[]): Promise<RecordResult> {
    if (this.closing) throw new VcamError('OUTBOX_CLOSED', 'the agent is shutting down; retry against the restarted agent', { retriable: true });
    const now = Date.now();
    const result: RecordResult = { eventIds: [], accepted: 0, duplicates: 0, rejected: [] };
    const pending: Pending[] = [];
    inputs.forEach((input, index) => {
      const checked = checkCameraEvent(input, now);
      if (!checked.ok) {
        result.eventIds.push(null);
        result.rejected.push({ index, reason: checked.reason, message: checked.message });
        return;
      }
      const e = checked.event;
      const eventId = stableEventId(e);
      result.eventIds.push(eventId);
      const body = JSON.stringify({ eventId, deviceId: e.deviceId, geoId: e.geoId, ts: e.ts, type: e.type, confidence: e.confidence, attrs: e.attrs });
      pending.push({ eventId, receivedAt: now, body });
    });
    for (const [reason, count] of countBy(result.rejected.map((r) => r.reason))) this.emit('rejected', reason, count);
    try {
      const { stored, duplicates } = await this.outbox.append(pending);
      result.accepted = pending.length;
      result.duplicates = duplicates;
      this.emit('accepted', stored, duplicates);
    } catch (err) {
      if (err instanceof VcamError && err.code === 'OUTBOX_FULL') this.emit('rejected', 'outbox_full', pending.length);
      throw err;
    }
    return result;
  }

  get connected(): boolean {
    return this.publisher.isConnected;
  }

  stats(): { backlogEvents: number; backlogBytes: number; oldestUnsentAgeMs: number; connected: boolean; inFlightBatches: number } {
    const s = this.outbox.stats();
    return { backlogEvents: s.events, backlogBytes: s.bytes, oldestUnsentAgeMs: s.oldestAgeMs, connected: this.connected, inFlightBatches: this.publisher.inFlightBatches };
  }

  /**
   * Graceful shutdown: stop taking events, give the broker up to `drainMs` to acknowledge the
   * backlog, then close. Whatever is still unacknowledged stays in the outbox for next time.
   */
  close(drainMs = 5_000): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.expiryTimer);
      await this.publisher.drain(drainMs);
      await this.publisher.stop();
      this.outbox.close();
    })();
    return this.closing;
  }
}

export function createAgent(options: AgentOptions): Agent {
  return new Agent(options);
}

function countBy<T>(items: T[]): Map<T, number> {
  const m = new Map<T, number>();
  for (const it of items) m.set(it, (m.get(it) ?? 0) + 1);
  return m;
}
