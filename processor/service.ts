/** The processor as a running service: migrations, consumer, and the ops HTTP endpoint. */
import { ClickHouseError, createClient } from '@clickhouse/client';
import { migrate, DEFAULT_RETENTION, type Retention } from '../clickhouse/schema.js';
import { definedOnly } from '../common/config.js';
import { listen, opsRoutes, type RunningServer } from '../common/http.js';
import { PROCESSOR_GROUP, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { silentLogger } from '../common/log.js';
import { retry } from '../common/retry.js';
import { createRegistry, type Registry } from '../common/metrics.js';
import { DlqConsumer } from './dlq.js';
import { Processor, type ProcessorOptions } from './processor.js';
import type { AlertOptions } from './alerts/index.js';
import { startMonitor } from './monitor.js';
import { instrumentConsumers, instrumentProcessor, instrumentDlq } from './telemetry.js';

export interface ProcessorServiceOptions extends KafkaClientOptions, Partial<Omit<ProcessorOptions, keyof KafkaClientOptions | 'clickhouse'>> {
  clickhouseUrl: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  retention?: Retention;
  httpPort?: number;
  httpHost?: string;
  registry?: Registry;
  /** Copy the bridge's dead-letter topic into `vcam.dlq` (default on; one copier per group is enough). */
  copyDlq?: boolean;
  alerts?: Partial<AlertOptions>;
}

export interface ProcessorService {
  processor: Processor;
  registry: Registry;
  httpPort?: number;
  close(): Promise<void>;
}

export const PROCESSOR_DEFAULTS = {
  group: PROCESSOR_GROUP,
  hotHorizonMs: 10 * 60_000,
  lateAfterMs: 30_000,
  sessionTimeoutMs: 30_000,
  maxWaitTimeInMs: 100,
  geoRefreshMs: 5_000,
  maxChunkEvents: 20_000,
  lingerMs: 200,
  /**
   * A chunk not full starts no sooner than this after the previous one started. Each chunk costs
   * ClickHouse about seven statements whatever its size; at 10,000 events/s, chunks every 500 ms
   * instead of back to back cut ClickHouse's CPU per event by about half at the same p99
   * (docs/performance.md, "Cost per event").
   */
  chunkIntervalMs: 500,
} as const;

export async function startProcessorService(o: ProcessorServiceOptions): Promise<ProcessorService> {
  const log = o.logger ?? silentLogger;
  const retention = o.retention ?? DEFAULT_RETENTION;
  const clickhouse = createClient({ url: o.clickhouseUrl, username: o.clickhouseUser, password: o.clickhousePassword, request_timeout: 60_000 });
  const registry = o.registry ?? createRegistry({ component: 'processor' });
  const processor = new Processor({ ...PROCESSOR_DEFAULTS, ...definedOnly(o), clickhouse, rawRetentionDays: retention.rawDays, logger: log });
  instrumentProcessor(processor, registry, log);
  // The ops endpoint comes first: a processor (re)started while ClickHouse is down must be seen
  // by Prometheus as up and failing to reach ClickHouse, which is the alert that names the
  // cause, not as down. /healthz answers 503 until the processor consumes.
  const group = o.group ?? PROCESSOR_DEFAULTS.group;
  const dlq =
    o.copyDlq === false
      ? undefined
      : new DlqConsumer({
          ...o,
          clickhouse,
          rawRetentionDays: retention.rawDays,
          group: `${group}.dlq`,
          sessionTimeoutMs: o.sessionTimeoutMs ?? PROCESSOR_DEFAULTS.sessionTimeoutMs,
          maxWaitTimeInMs: o.maxWaitTimeInMs ?? PROCESSOR_DEFAULTS.maxWaitTimeInMs,
        });
  const members = { events: processor.member, ...(dlq && { dead_letters: dlq.member }) };
  instrumentConsumers(members, registry, log);
  if (dlq) instrumentDlq(dlq, registry, log);
  // The consumer out of its group the longest, if any: /healthz and the consumer_down alert.
  const consumerDown = () => {
    const down = Object.entries(members).filter(([, m]) => m.downSince !== undefined);
    down.sort(([, a], [, b]) => a.downSince! - b.downSince!);
    const [name, m] = down[0] ?? [];
    return m ? { consumer: name!.replace('_', ' '), since: m.downSince!, error: m.lastError?.message ?? 'not yet in its group' } : undefined;
  };
  let phase = 'waiting for ClickHouse';
  const health = () => {
    const down = consumerDown();
    if (phase === 'consuming' && !down) return { ok: true, partitions: processor.assignedPartitions, hotIds: processor.hotIds() };
    if (phase === 'consuming') return { ok: false, phase: `the ${down!.consumer} consumer is out of its Kafka group since ${new Date(down!.since).toISOString()}, restarting`, error: down!.error };
    // Joining: a start that keeps failing says why.
    const failing = phase === 'joining the consumer group' && processor.member.lastError;
    return { ok: false, phase, ...(failing && { error: failing.message }) };
  };
  let http: RunningServer | undefined;
  if (o.httpPort !== undefined) http = await listen(opsRoutes(registry, health), o.httpPort, o.httpHost ?? '127.0.0.1');
  const consume = async () => {
    // Started while ClickHouse is down, the processor waits for it, as its writes do, instead of
    // exiting and being restarted in a loop; each failed attempt counts as a failed write.
    const applied = await retry(() => migrate(clickhouse, retention), {
      initialMs: 500,
      maxMs: 5_000,
      isRetriable: (err) => !(err instanceof ClickHouseError),
      onRetry: (err, attempt, delayMs) => processor.writer.emit('writeFailed', err as Error, null, attempt, delayMs),
    });
    if (applied.length) log.info({ applied }, 'ClickHouse migrations applied');
    const monitor = await startMonitor({ client: clickhouse, source: processor.writer, lag: () => processor.lag(), log, registry, lateAfterMs: o.lateAfterMs ?? PROCESSOR_DEFAULTS.lateAfterMs, alerts: o.alerts, consumerDown });
    processor.on('offsetGap', (p, expected, got) => monitor.tracker.offsetGap(p, Number(got - expected)));
    dlq?.on('offsetGap', (p, expected, got) => monitor.tracker.offsetGap(p, Number(got - expected), TOPICS.dlq));
    processor.on('offsetsBackwards', (p, expected, logEnd) => monitor.tracker.offsetsBackwards(p, expected, logEnd));
    processor.on('replayHeld', (p, token, distance, window) => monitor.tracker.replayHeld(p, token, distance, window));
    phase = 'joining the consumer group';
    await processor.start();
    await dlq?.start();
    phase = 'consuming';
    return monitor;
  };
  const monitor = await consume().catch(async (err) => {
    await http?.close();
    throw err;
  });
  log.info({ group, clickhouse: o.clickhouseUrl, httpPort: http?.port }, 'processor started');
  let closing: Promise<void> | undefined;
  return {
    processor,
    registry,
    httpPort: http?.port,
    close() {
      closing ??= (async () => {
        monitor.stop();
        await dlq?.stop();
        await processor.stop();
        await http?.close();
        await clickhouse.close();
        log.info('processor stopped');
      })();
      return closing;
    },
  };
}
