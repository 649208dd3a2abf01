/** A local Apache Kafka and an embedded ClickHouse for one test file, started and stopped by its hooks. */
import { afterAll, beforeAll } from 'vitest';
import type { LocalKafka } from '../../kafka/index.js';
import { startClickHouse } from './clickhouse.js';
import { startTestKafka } from './kafka.js';

export function useKafkaAndClickHouse(partitions = 16): { kafka: LocalKafka; ch: Awaited<ReturnType<typeof startClickHouse>> } {
  const env = {} as { kafka: LocalKafka; ch: Awaited<ReturnType<typeof startClickHouse>> };
  beforeAll(async () => {
    [env.kafka, env.ch] = await Promise.all([startTestKafka(partitions), startClickHouse()]);
  }, 120_000);
  afterAll(async () => {
    await env.ch?.stop();
    await env.kafka?.stop();
  });
  return env;
}
