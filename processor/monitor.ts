/** Runs the status tracker and the alert rules for a processor (Kafka or single-node) on one timer. */
import type { EventEmitter } from 'node:events';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../common/log.js';
import { Gauge, type Registry } from '../common/metrics.js';
import { taskStreaks } from '../common/streak.js';
import { AlertEvaluator, ALERT_DEFAULTS, type AlertOptions } from './alerts/index.js';
import { StatusTracker } from './status.js';
import type { HealthSnapshot } from './alerts/index.js';
import type { WriterEvents } from './writer.js';

export interface Monitor {
  tracker: StatusTracker;
  alerts: AlertEvaluator;
  stop(): void;
}

export async function startMonitor(o: {
  client: ClickHouseClient;
  source: EventEmitter<WriterEvents>;
  lag: () => Map<number, number>;
  log: Logger;
  registry: Registry;
  lateAfterMs: number;
  everyMs?: number;
  alerts?: Partial<AlertOptions>;
  consumerDown?: () => HealthSnapshot['consumerDown'];
}): Promise<Monitor> {
  const tracker = new StatusTracker(o.source, o.lag, o.consumerDown);
  const alerts = AlertEvaluator.standard(o.client, () => tracker.health(), { ...ALERT_DEFAULTS, ...o.alerts, lateAfterMs: o.lateAfterMs });
  alerts.on('opened', (a) => o.log[a.severity === 'critical' ? 'error' : 'warn']({ kind: a.kind, subject: a.subject }, `ALERT: ${a.message}`));
  alerts.on('resolved', (a) => o.log.info({ kind: a.kind, subject: a.subject }, 'alert resolved'));
  let lastFailure = 0;
  alerts.on('failed', (err) => {
    if (Date.now() - lastFailure > 60_000) o.log.warn({ err: err.message }, 'alert evaluation could not run');
    lastFailure = Date.now();
  });
  new Gauge({
    name: 'vcam_alerts_open',
    help: 'Open alerts by kind',
    labelNames: ['kind'],
    registers: [o.registry],
    collect() {
      this.reset();
      const byKind = new Map<string, number>();
      for (const a of alerts.book.openAlerts()) byKind.set(a.kind, (byKind.get(a.kind) ?? 0) + 1);
      for (const [kind, n] of byKind) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: 'vcam_processor_consumer_lag_seconds',
    help: 'Per partition with events waiting: age of the newest message written (Kafka timestamp)',
    labelNames: ['partition'],
    registers: [o.registry],
    collect() {
      this.reset();
      for (const [partition, s] of tracker.lagSeconds()) this.set({ partition: String(partition) }, s);
    },
  });
  const every = o.everyMs ?? ALERT_DEFAULTS.everyMs;
  await alerts.start(every);
  // Other processors take a processor without status rows for gone (alerts/pipeline-health.ts): a failing write must show.
  const statusWrite = taskStreaks(o.registry, o.log, 'processor')('status_write');
  const timer = setInterval(
    () =>
      void tracker.write(o.client).then(
        () => statusWrite.ok(),
        (err: unknown) => statusWrite.failed(err),
      ),
    every,
  );
  timer.unref();
  return {
    tracker,
    alerts,
    stop() {
      clearInterval(timer);
      alerts.stop();
    },
  };
}
