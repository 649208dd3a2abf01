/** A Kafka test peer and an embedded ClickHouse for one test file, started and stopped by its hooks. */
import { afterAll, beforeAll } from 'vitest';
import { startKafkaPeer, type KafkaPeer } from '../../simulator/kafka-peer/index.js';
import { startClickHouse } from './clickhouse.js';

export function useKafkaAndClickHouse(partitions = 16): { peer: KafkaPeer; ch: Awaited<ReturnType<typeof startClickHouse>> } {
  const env = {} as { peer: KafkaPeer; ch: Awaited<ReturnType<typeof startClickHouse>> };
  beforeAll(async () => {
    [env.peer, env.ch] = await Promise.all([startKafkaPeer({ partitions }), startClickHouse()]);
  });
  afterAll(async () => {
    await env.ch?.stop();
    await env.peer?.stop();
  });
  return env;
}
