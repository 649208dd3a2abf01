/**
 * Moves events from the outbox to an MQTT broker: QoS 1, batched payloads, a bounded window
 * of unacknowledged publishes, and reconnects with jittered backoff.
 *
 * Batching needs no timer: while the window is full, new events pile up in the outbox and the
 * next free slot takes them all (up to the batch limits). At low rates a batch is one event
 * and latency is one round trip; under load batches grow by themselves.
 *
 * Each connection is a fresh mqtt.js client with a clean session. Whatever was in flight when
 * a connection dropped is simply read again from the outbox by the next connection: the
 * outbox, not mqtt.js's in-memory store, is the source of truth, which also makes a restart of
 * the process the same code path as a reconnect.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { agentTopic, CONTRACT_VERSION } from '../common/contract.js';
import { backoffDelay, type BackoffOptions } from '../common/retry.js';
import type { Outbox, SentRows } from './outbox.js';

export interface PublisherOptions {
  agentId: string;
  url: string;
  username?: string;
  password?: string;
  /** 4 = MQTT 3.1.1 (works with any broker), 5 = MQTT 5. */
  protocolVersion: 4 | 5;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Accept a broker certificate that does not verify. For development only. */
  insecure?: boolean;
  maxBatchEvents: number;
  maxBatchBytes: number;
  maxInFlight: number;
  connectTimeoutMs: number;
  keepaliveS: number;
  backoff: BackoffOptions;
}

export interface PublisherHooks {
  connected(): void;
  disconnected(reason: string, retryInMs: number): void;
  published(batch: { events: number; bytes: number; firstSeq: number; lastSeq: number; latencyMs: number }): void;
  publishFailed(err: Error): void;
}

interface InFlight {
  firstSeq: number;
  lastSeq: number;
  sent: SentRows;
  bytes: number;
  sentAt: number;
}

export class Publisher {
  private client?: MqttClient;
  private connected = false;
  private stopped = false;
  /** Highest seq handed to the current connection. */
  private cursor = 0;
  private readonly inFlight = new Set<InFlight>();
  private attempt = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private pumpScheduled = false;
  private idleWaiters: (() => void)[] = [];
  private readonly topic: string;
  private readonly prefix: string;
  private readonly agentIdJson: string;

  constructor(
    private readonly outbox: Outbox,
    private readonly options: PublisherOptions,
    private readonly hooks: PublisherHooks,
  ) {
    this.topic = agentTopic(options.agentId);
    this.agentIdJson = JSON.stringify(options.agentId);
    this.prefix = `{"v":${CONTRACT_VERSION},"agentId":${this.agentIdJson},"events":[`;
    outbox.on('appended', () => this.schedulePump());
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get inFlightBatches(): number {
    return this.inFlight.size;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  private clientOptions(): IClientOptions {
    const o = this.options;
    const file = (p?: string) => (p ? readFileSync(p) : undefined);
    return {
      clientId: o.agentId,
      username: o.username,
      password: o.password,
      protocolVersion: o.protocolVersion,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs,
      keepalive: o.keepaliveS,
      queueQoSZero: false,
      ca: file(o.caFile),
      cert: file(o.certFile),
      key: file(o.keyFile),
      rejectUnauthorized: !o.insecure,
    };
  }

  private connect(): void {
    if (this.stopped) return;
    const client = mqtt.connect(this.options.url, this.clientOptions());
    this.client = client;
    let lastError = 'connection closed';
    client.on('connect', () => {
      if (client !== this.client) return;
      this.connected = true;
      this.attempt = 0;
      this.cursor = 0;
      this.inFlight.clear();
      this.hooks.connected();
      this.pump();
    });
    client.on('error', (err) => {
      lastError = err.message;
    });
    client.on('close', () => {
      if (client !== this.client) return;
      client.removeAllListeners('connect');
      client.end(true);
      const wasConnected = this.connected;
      this.connected = false;
      this.inFlight.clear();
      this.wakeIdle();
      if (this.stopped) return;
      const delay = backoffDelay(wasConnected ? 0 : this.attempt++, this.options.backoff);
      this.hooks.disconnected(lastError, delay);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private schedulePump(): void {
    if (this.pumpScheduled || !this.connected) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const client = this.client;
    while (this.connected && client && this.inFlight.size < this.options.maxInFlight) {
      const next = this.encode();
      if (!next) break;
      const { payload, firstSeq, lastSeq, sent } = next;
      const batch: InFlight = { firstSeq, lastSeq, sent, bytes: payload.length, sentAt: Date.now() };
      this.cursor = lastSeq;
      this.inFlight.add(batch);
      client.publish(this.topic, payload, { qos: 1 }, (err) => this.onAck(client, batch, err));
    }
    if (this.inFlight.size === 0) this.wakeIdle();
  }

  /**
   * Builds `{"v":1,"agentId":…,"events":[…]}` from the rows after the cursor, up to the byte
   * limit (at least one event); undefined when there are none.
   */
  private encode(): { payload: Buffer; firstSeq: number; lastSeq: number; sent: SentRows } | undefined {
    const parts: string[] = [];
    const sent: SentRows = { ids: [], bytes: 0 };
    let size = this.prefix.length + 2;
    let firstSeq = 0;
    let lastSeq = 0;
    for (const row of this.outbox.rowsAfter(this.cursor, this.options.maxBatchEvents)) {
      const event = `${row.body.slice(0, -1)},"agentId":${this.agentIdJson},"seq":${row.seq},"receivedAt":${row.receivedAt}}`;
      if (parts.length > 0 && size + event.length + 1 > this.options.maxBatchBytes) break;
      parts.push(event);
      size += event.length + 1;
      sent.ids.push(row.eventId);
      sent.bytes += row.bytes;
      firstSeq ||= row.seq;
      lastSeq = row.seq;
    }
    if (parts.length === 0) return undefined;
    return { payload: Buffer.from(`${this.prefix}${parts.join(',')}]}`), firstSeq, lastSeq, sent };
  }

  private onAck(client: MqttClient, batch: InFlight, err: Error | undefined): void {
    if (err) {
      this.hooks.publishFailed(err);
      // The batch stays in the outbox; a new connection starts again from its head.
      if (client === this.client && this.connected) client.stream.destroy();
      return;
    }
    // A PUBACK is always safe to apply, even from an older connection: the broker has the events.
    this.outbox.ack(batch.firstSeq, batch.lastSeq, batch.sent);
    this.inFlight.delete(batch);
    this.hooks.published({ events: batch.sent.ids.length, bytes: batch.bytes, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq, latencyMs: Date.now() - batch.sentAt });
    this.pump();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is in flight and the outbox is empty, or when disconnected, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.connected && (this.inFlight.size > 0 || this.outbox.stats().events > 0) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(100, Math.max(1, deadline - Date.now())));
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    this.inFlight.clear();
    if (client) await client.endAsync(true).catch(() => undefined);
  }
}
