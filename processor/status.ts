/**
 * The processor's own view of itself, for alerts and for `vcam.pipeline_status`: lag per
 * partition, events per second, end-to-end latency percentiles (agent receive time → commit)
 * over the last interval, when the last chunk was written and whether writes are failing.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { hostname } from 'node:os';
import type { HealthSnapshot } from './alerts/index.js';
import type { WriterEvents } from './writer.js';
import type { EventEmitter } from 'node:events';
import { dt64 } from '../clickhouse/schema.js';

/** Far more gaps than can happen between two alert evaluations. */
export const MAX_LOST_KEPT = 1_000;

export class StatusTracker {
  readonly instance = `${hostname()}:${process.pid}`;
  private readonly startedAt = Date.now();
  private latencies: number[] = [];
  private counted = 0;
  private since = Date.now();
  private lastChunkAt = Date.now();
  private failingSince?: number;
  private unreported?: number;
  private readonly lost: HealthSnapshot['lostOffsets'] = [];
  private readonly backwards = new Map<number, HealthSnapshot['offsetsBackwards'][number]>();
  private readonly held = new Map<number, NonNullable<HealthSnapshot['replaysHeld']>[number]>();
  /** Kafka timestamp of the newest message written, per partition: lag in seconds is measured from it. */
  private readonly lastMessageAt = new Map<number, number>();

  constructor(
    source: EventEmitter<WriterEvents>,
    private readonly lag: () => Map<number, number>,
    private readonly consumerDown: () => HealthSnapshot['consumerDown'] = () => undefined,
  ) {
    source.on('replayed', () => this.wrote());
    source.on('chunk', (c) => {
      this.wrote();
      this.counted += c.result.events.length;
      this.lastMessageAt.set(c.partition, c.lastMessageAt);
      for (const ms of c.latenciesMs) this.latencies.push(ms);
    });
    source.on('writeFailed', () => (this.failingSince ??= Date.now()));
  }

  private wrote(): void {
    this.lastChunkAt = Date.now();
    // An outage shorter than the evaluation interval must still be reported once.
    if (this.failingSince !== undefined) this.unreported ??= this.failingSince;
    this.failingSince = undefined;
  }

  /**
   * The newest gaps only: a data_loss alert is sticky, so once the evaluator has opened it
   * (every few seconds) forgetting the gap resolves nothing. The bound is for a log that
   * keeps losing offsets for days; vcam_processor_offsets_lost_total counts every one.
   */
  offsetGap(partition: number, count: number, topic?: string): void {
    this.lost.push({ partition, count, at: Date.now(), ...(topic && { topic }) });
    if (this.lost.length > MAX_LOST_KEPT) this.lost.splice(0, this.lost.length - MAX_LOST_KEPT);
  }

  /** One entry per partition: its first detection stands until the alert is resolved by hand. */
  offsetsBackwards(partition: number, expected: bigint, logEnd: bigint): void {
    if (!this.backwards.has(partition)) this.backwards.set(partition, { partition, expected: String(expected), logEnd: String(logEnd) });
  }

  /** One entry per partition: held until an operator decides, like offsets that go backwards. */
  replayHeld(partition: number, token: string, distance: number, window: number): void {
    if (!this.held.has(partition)) this.held.set(partition, { partition, token, distance, window });
  }

  /** Per partition with events waiting: how far behind, in seconds, the newest written message is. */
  lagSeconds(now = Date.now()): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, n] of this.lag()) out.set(p, n > 0 ? Math.max(0, (now - (this.lastMessageAt.get(p) ?? this.startedAt)) / 1000) : 0);
    return out;
  }

  health(): HealthSnapshot {
    let lagEvents = 0;
    for (const n of this.lag().values()) lagEvents += n;
    const lagSeconds = Math.max(0, ...this.lagSeconds().values());
    // With nothing waiting there is no stall, however long ago the last chunk was.
    const failingSince = this.failingSince ?? this.unreported;
    this.unreported = undefined;
    return {
      instance: this.instance,
      lagEvents,
      lagSeconds,
      lastChunkAt: lagEvents > 0 ? this.lastChunkAt : Date.now(),
      failingSince,
      consumerDown: this.consumerDown(),
      lostOffsets: this.lost,
      offsetsBackwards: [...this.backwards.values()],
      replaysHeld: [...this.held.values()],
    };
  }

  /** Writes one row per partition (or one with partition -1 without Kafka) and starts a new interval. */
  async write(client: ClickHouseClient, now = Date.now()): Promise<void> {
    const sorted = this.latencies.sort((a, b) => a - b);
    const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : 0);
    const rate = this.counted / Math.max(0.001, (now - this.since) / 1000);
    const lag = this.lag();
    const base = { at: dt64(now), instance: this.instance, events_per_s: rate, latency_p50_ms: q(0.5), latency_p95_ms: q(0.95), latency_p99_ms: q(0.99) };
    const values = lag.size ? [...lag].map(([p, l]) => ({ ...base, kafka_partition: p, lag: l })) : [{ ...base, kafka_partition: -1, lag: 0 }];
    this.latencies = [];
    this.counted = 0;
    this.since = now;
    await client.insert({ table: 'vcam.pipeline_status', values, format: 'JSONEachRow' });
  }
}
