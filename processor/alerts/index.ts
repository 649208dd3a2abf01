/** Evaluates the alert rules on a timer and keeps `vcam.alerts` in step. */
import { EventEmitter } from 'node:events';
import type { ClickHouseClient } from '@clickhouse/client';
import { AlertBook, type AlertRow, type Rule } from './book.js';
import { deviceSilentRule } from './device-silent.js';
import { geoVolumeRule, type GeoVolumeOptions } from './geo-volume.js';
import { pipelineHealthRule, type HealthSnapshot, type PipelineHealthOptions } from './pipeline-health.js';

export type { AlertRow, Finding, Rule, Severity } from './book.js';
export type { HealthSnapshot } from './pipeline-health.js';
export type { GeoVolumeOptions } from './geo-volume.js';

export interface AlertOptions extends GeoVolumeOptions, PipelineHealthOptions {
  silentAfterMs: number;
  everyMs: number;
}

export const ALERT_DEFAULTS = {
  ratio: 3,
  minVolume: 20,
  baselineMinutes: 10,
  silentAfterMs: 10 * 60_000,
  maxLagEvents: 100_000,
  maxLagSeconds: 60,
  stalledAfterMs: 60_000,
  consumerDownAfterMs: 15_000,
  goneAfterMs: 5 * 60_000,
  everyMs: 10_000,
} as const;

export interface AlertEvents {
  opened: [row: AlertRow];
  resolved: [row: AlertRow];
  failed: [err: Error];
}

export class AlertEvaluator extends EventEmitter<AlertEvents> {
  readonly book: AlertBook;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    client: ClickHouseClient,
    private readonly rules: Rule[],
  ) {
    super();
    this.book = new AlertBook(client);
  }

  static standard(client: ClickHouseClient, health: () => HealthSnapshot, o: AlertOptions): AlertEvaluator {
    const liveInstances = async (since: number) => {
      const rows = await (await client.query({ query: 'SELECT DISTINCT instance FROM vcam.pipeline_status WHERE at >= fromUnixTimestamp64Milli({since:Int64})', query_params: { since }, format: 'JSONEachRow' })).json<{ instance: string }>();
      return new Set(rows.map((r) => r.instance));
    };
    return new AlertEvaluator(client, [geoVolumeRule(client, o), deviceSilentRule(client, o), pipelineHealthRule(health, o, liveInstances)]);
  }

  async start(everyMs: number): Promise<void> {
    await this.book.load().catch((err) => this.emit('failed', err as Error));
    this.timer = setInterval(() => void this.tick(), everyMs);
    this.timer.unref();
  }

  /** One evaluation of every rule. A rule that cannot run (ClickHouse down) leaves its alerts as they are. */
  tick(now = Date.now()): Promise<void> {
    this.running ??= (async () => {
      for (const rule of this.rules) {
        try {
          const { opened, resolved } = this.book.reconcile(rule.kinds, await rule.evaluate(now), now, rule.sticky, rule.owns);
          for (const r of opened) this.emit('opened', r);
          for (const r of resolved) this.emit('resolved', r);
        } catch (err) {
          this.emit('failed', err as Error);
        }
      }
      await this.book.flush().catch((err) => this.emit('failed', err as Error));
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
