/**
 * `createProcessor()`: the processor as a library for single-node mode. The bridge calls
 * `forward(batch)` for each publish and acknowledges it when the promise resolves.
 */
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { migrate, DEFAULT_RETENTION, type Retention } from '../clickhouse/schema.js';
import { silentLogger, type Logger } from '../common/log.js';
import { taskStreaks } from '../common/streak.js';
import { createRegistry, type Registry } from '../common/metrics.js';
import { LocalProcessor } from './local.js';
import { PROCESSOR_DEFAULTS } from './service.js';
import type { AlertOptions } from './alerts/index.js';
import { startMonitor, type Monitor } from './monitor.js';
import { instrumentWriter } from './telemetry.js';

export interface CreateProcessorOptions {
  clickhouseUrl: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  retention?: Retention;
  hotHorizonMs?: number;
  dedup?: boolean;
  alerts?: Partial<AlertOptions>;
  lateAfterMs?: number;
  chunkIntervalMs?: number;
  logger?: Logger;
  registry?: Registry;
}

export function createProcessor(o: CreateProcessorOptions): LocalProcessor & { registry: Registry } {
  // Write failures are logged by the processor itself (pino); the client's console output would only duplicate them.
  const clickhouse = createClient({ url: o.clickhouseUrl, username: o.clickhouseUser, password: o.clickhousePassword, request_timeout: 60_000, log: { level: ClickHouseLogLevel.OFF } });
  const retention = o.retention ?? DEFAULT_RETENTION;
  const registry = o.registry ?? createRegistry({ component: 'processor' });
  const local = new LocalProcessor({
    clickhouse,
    hotHorizonMs: o.hotHorizonMs ?? PROCESSOR_DEFAULTS.hotHorizonMs,
    dedup: o.dedup,
    lateAfterMs: o.lateAfterMs ?? PROCESSOR_DEFAULTS.lateAfterMs,
    rawRetentionDays: retention.rawDays,
    geoRefreshMs: PROCESSOR_DEFAULTS.geoRefreshMs,
    chunkIntervalMs: o.chunkIntervalMs ?? PROCESSOR_DEFAULTS.chunkIntervalMs,
    streaks: taskStreaks(registry, o.logger ?? silentLogger, 'processor'),
  });
  instrumentWriter(local.writer, registry, o.logger ?? silentLogger);
  const start = local.start.bind(local);
  const close = local.close.bind(local);
  let monitor: Monitor | undefined;
  return Object.assign(local, {
    registry,
    async start() {
      await migrate(clickhouse, retention);
      await start();
      monitor = await startMonitor({ client: clickhouse, source: local.writer, lag: () => new Map(), log: o.logger ?? silentLogger, registry, lateAfterMs: o.lateAfterMs ?? PROCESSOR_DEFAULTS.lateAfterMs, alerts: o.alerts });
    },
    async close() {
      monitor?.stop();
      await close();
      await clickhouse.close();
    },
  });
}
