/** `vcam processor`: the Kafka → ClickHouse consumer. */
import { CLICKHOUSE_AUTH_OPTIONS, clickhouseCredentials } from '../common/clickhouse.js';
import { defineCommand } from '../common/config.js';
import { runService } from '../common/cli.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { startProcessorService, PROCESSOR_DEFAULTS } from './service.js';

export const processorCommand = defineCommand({
  name: 'vcam processor',
  summary: 'Consumes vcam.events as a consumer group: deduplicates by eventId, joins geo names,\naggregates by event time and writes to ClickHouse with an exactly-once effect.',
  options: {
    kafkaBrokers: { type: 'list', required: true, description: 'Kafka bootstrap brokers host:port,…' },
    kafkaClientId: { type: 'string', default: 'vcam-processor', description: 'Kafka client id' },
    group: { type: 'string', default: PROCESSOR_DEFAULTS.group, description: 'consumer group' },
    clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP URL' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    hotHorizon: { type: 'duration', default: '10m', description: 'event-time span of the in-memory dedup tier (older duplicates are checked in ClickHouse)' },
    lateAfter: { type: 'duration', default: '30s', description: 'an event arriving this long after its event time is counted as late' },
    rawRetention: { type: 'int', default: 30, description: 'days raw events are kept (events older cannot be deduplicated: dead-lettered)' },
    aggregateRetention: { type: 'int', default: 90, description: 'days aggregates are kept' },
    sessionTimeout: { type: 'duration', default: '30s', description: 'Kafka consumer session timeout' },
    maxWait: { type: 'duration', default: '100ms', description: 'Kafka fetch max wait' },
    chunkInterval: { type: 'duration', default: '500ms', description: 'a chunk not full is written no sooner than this after the previous one started: fewer, larger ClickHouse writes under load, for up to this much latency' },
    kafkaTls: { type: 'boolean', default: false, description: 'connect to Kafka over TLS' },
    kafkaSaslMechanism: { type: 'string', choices: ['plain', 'scram-sha-256', 'scram-sha-512'], description: 'Kafka SASL mechanism' },
    kafkaSaslUsername: { type: 'string', description: 'Kafka SASL username' },
    kafkaSaslPassword: { type: 'string', secret: true, description: 'Kafka SASL password' },
    alertBaseline: { type: 'duration', default: '10m', description: 'a geo spike or drop is a minute compared with the mean of this many minutes before it' },
    replayBeyondDedupWindow: {
      type: 'boolean',
      default: false,
      description: "replay a partition's unfinished last chunk even when it is further back than ClickHouse's insert deduplication window (held and alerted otherwise); only after checking it (docs/operations.md)",
    },
    copyDlq: { type: 'boolean', default: true, description: "copy the bridge's dead-letter topic into vcam.dlq (--no-copy-dlq when another group does)" },
    dedup: { type: 'boolean', default: true, description: 'deduplicate by eventId; --no-dedup breaks the no-double-counting promise on purpose (vcam verify --break dedup)' },
    httpPort: { type: 'int', default: 9102, description: 'port for /healthz and /metrics' },
    httpHost: { type: 'string', default: '127.0.0.1', description: 'HTTP listen address' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

export function main(argv: string[]): Promise<number> {
  return runService(processorCommand, argv, (c) =>
    startProcessorService({
      brokers: c.kafkaBrokers,
      clientId: c.kafkaClientId,
      tls: c.kafkaTls,
      saslMechanism: c.kafkaSaslMechanism,
      saslUsername: c.kafkaSaslUsername,
      saslPassword: c.kafkaSaslPassword,
      logger: createLogger('processor', c.logLevel),
      group: c.group,
      clickhouseUrl: c.clickhouseUrl,
      ...clickhouseCredentials(c),
      hotHorizonMs: c.hotHorizon,
      dedup: c.dedup,
      alerts: { baselineMinutes: Math.max(1, Math.round(c.alertBaseline / 60_000)) },
      copyDlq: c.copyDlq,
      replayBeyondWindow: c.replayBeyondDedupWindow,
      lateAfterMs: c.lateAfter,
      retention: { rawDays: c.rawRetention, aggregateDays: c.aggregateRetention },
      sessionTimeoutMs: c.sessionTimeout,
      maxWaitTimeInMs: c.maxWait,
      chunkIntervalMs: c.chunkInterval,
      httpPort: c.httpPort,
      httpHost: c.httpHost,
      registry: createRegistry({ component: 'processor' }, true),
    }),
  );
}
