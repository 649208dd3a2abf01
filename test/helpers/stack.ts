/** A local Apache Kafka and an embedded ClickHouse for one test file, started and stopped by its hooks. */
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../common/log.js';
import type { LocalKafka } from '../../kafka/index.js';
import { startProcessorService, type ProcessorService, type ProcessorServiceOptions } from '../../processor/index.js';
import { startClickHouse } from './clickhouse.js';
import { startTestKafka } from './kafka.js';

type KafkaAndClickHouse = { kafka: LocalKafka; ch: Awaited<ReturnType<typeof startClickHouse>> };

/** A processor on this file's broker and ClickHouse, quiet and with a test's short session and retries; `o` overrides. */
export function startTestProcessor(env: KafkaAndClickHouse, o: Partial<ProcessorServiceOptions> & { clientId: string }): Promise<ProcessorService> {
  return startProcessorService({
    brokers: env.kafka.brokers,
    logger: silentLogger,
    clickhouseUrl: env.ch.url,
    ...env.ch.auth,
    sessionTimeoutMs: 6_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
    ...o,
  });
}

export function useKafkaAndClickHouse(partitions = 16): KafkaAndClickHouse {
  const env = {} as KafkaAndClickHouse;
  beforeAll(async () => {
    [env.kafka, env.ch] = await Promise.all([startTestKafka(partitions), startClickHouse()]);
  }, 120_000);
  afterAll(async () => {
    await env.ch?.stop();
    await env.kafka?.stop();
  });
  return env;
}
