/** Kafka client construction shared by the bridge and the processor: one place for logs and TLS/SASL. */
import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type Consumer, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import type { Logger } from './log.js';

export const TOPICS = { events: 'vcam.events', dlq: 'vcam.events.dlq' } as const;

/**
 * The `format` header of a `vcam.events` record holding many events, one JSON object per line:
 * the bridge sends a partition's events of one send as one record, because kafkajs' cost is per
 * record (docs/architecture.md, "Records of many events"). A record without it is one event,
 * whatever newlines its JSON has.
 */
export const NDJSON = 'ndjson';

export function isNdjson(headers: Record<string, unknown> | undefined): boolean {
  return String(headers?.format) === NDJSON;
}
/** The processors' consumer group unless `--group` says otherwise; verify reads its backlog. */
export const PROCESSOR_GROUP = 'vcam-processor';

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  tls?: boolean;
  tlsCa?: string;
  saslMechanism?: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  saslUsername?: string;
  saslPassword?: string;
  retry?: KafkaConfig['retry'];
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createKafka(o: KafkaClientOptions): Kafka {
  const log = o.logger.child({ lib: 'kafkajs' });
  const sasl: SASLOptions | undefined = o.saslMechanism ? ({ mechanism: o.saslMechanism, username: o.saslUsername ?? '', password: o.saslPassword ?? '' } as SASLOptions) : undefined;
  return new Kafka({
    clientId: o.clientId,
    brokers: o.brokers,
    ssl: o.tls ? (o.tlsCa ? { ca: [readFileSync(o.tlsCa, 'utf8')] } : true) : undefined,
    sasl,
    retry: o.retry,
    connectionTimeout: o.connectionTimeoutMs ?? 3_000,
    requestTimeout: o.requestTimeoutMs ?? 30_000,
    // kafkajs' INFO is chatty (every connect, every rejoin): keep it at debug in our logs.
    logLevel: logLevel.INFO,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, timestamp: _t, logger: _l, ...rest } = entry;
        const lvl = level === logLevel.INFO ? 'debug' : (LEVELS[level] ?? 'debug');
        log[lvl](rest, message);
      },
  });
}

/** A consumer-group member with vcam's settings: heartbeat at a sixth of the session, retries restart it. */
export function createGroupConsumer(o: KafkaClientOptions, g: { groupId: string; sessionTimeoutMs: number; maxWaitTimeInMs: number }): Consumer {
  return createKafka(o).consumer({
    groupId: g.groupId,
    sessionTimeout: g.sessionTimeoutMs,
    heartbeatInterval: Math.max(500, Math.floor(g.sessionTimeoutMs / 6)),
    maxWaitTimeInMs: g.maxWaitTimeInMs,
    retry: { retries: 10, restartOnFailure: async () => true },
  });
}
