/**
 * A consumer-group member that is never left stopped: one lifecycle for the processor's consumer
 * and the dead-letter copier.
 *
 * kafkajs restarts a member itself after a retriable crash, but after any other crash (a
 * rejected SyncGroup, retries exhausted while the broker was away) it stays down, and a failed
 * `connect`/`run` at start is the caller's to handle. Here every such stop starts a fresh member
 * after a backoff that grows to `maxMs`, forever, until `stop()`. Each crash and failed start is
 * an event (counted by telemetry.ts); while no member is in the group, `downSince` says since
 * when, for /healthz and the `consumer_down` alert.
 */
import { EventEmitter } from 'node:events';
import type { Consumer, EachBatchHandler } from 'kafkajs';
import { backoffDelay, type BackoffOptions } from '../common/retry.js';

export interface KeptConsumerEvents {
  /** The member joined the group: first start, kafkajs' own restart or ours; `downMs` after stops. */
  joined: [downMs: number | undefined];
  /**
   * The member stopped or could not start. `retryInMs` is when ours starts; undefined when
   * kafkajs restarts it itself (after a retriable error).
   */
  down: [err: Error, attempt: number, retryInMs: number | undefined];
}

export interface KeptConsumerOptions {
  /** A fresh kafkajs consumer; called for the first member and for each restart. */
  create: () => Consumer;
  topic: string;
  /** vcam commits its own offsets and resolves its own batches. */
  eachBatch: EachBatchHandler;
  backoff?: BackoffOptions;
}

export class KeptConsumer extends EventEmitter<KeptConsumerEvents> {
  consumer: Consumer;
  /** Since when no member of ours is in the group; undefined while one is. */
  downSince: number | undefined = Date.now();
  lastError: Error | undefined;
  private attempt = 0;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private firstJoin: { resolve: () => void; promise: Promise<void> };

  constructor(private readonly o: KeptConsumerOptions) {
    super();
    let resolve!: () => void;
    this.firstJoin = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    this.consumer = this.member();
  }

  /** Starts the first member; resolves once a member has joined the group (retrying meanwhile). */
  async start(): Promise<void> {
    void this.launch();
    await this.firstJoin.promise;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.firstJoin.resolve();
    await this.consumer.disconnect().catch(() => undefined);
  }

  private member(): Consumer {
    const consumer = this.o.create();
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (consumer !== this.consumer) return;
      const downMs = this.attempt > 0 && this.downSince !== undefined ? Date.now() - this.downSince : undefined;
      this.attempt = 0;
      this.downSince = undefined;
      this.lastError = undefined;
      this.emit('joined', downMs);
      this.firstJoin.resolve();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (consumer !== this.consumer || this.stopping) return;
      if (payload.restart) this.wentDown(payload.error, undefined);
      else this.restartLater(payload.error);
    });
    return consumer;
  }

  private async launch(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.consumer.connect();
      await this.consumer.subscribe({ topic: this.o.topic, fromBeginning: true });
      await this.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: this.o.eachBatch });
    } catch (err) {
      this.restartLater(err as Error);
    }
  }

  private wentDown(err: Error, retryInMs: number | undefined): void {
    this.downSince ??= Date.now();
    this.lastError = err;
    this.emit('down', err, ++this.attempt, retryInMs);
  }

  private restartLater(err: Error): void {
    if (this.stopping) return;
    const delay = backoffDelay(this.attempt, this.o.backoff ?? { initialMs: 1_000, maxMs: 30_000 });
    this.wentDown(err, delay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void (async () => {
        await this.consumer.disconnect().catch(() => undefined);
        if (this.stopping) return;
        this.consumer = this.member();
        await this.launch();
      })();
    }, delay);
  }
}
