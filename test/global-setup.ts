/**
 * Before any test file: the local Apache Kafka broker's jars, fetched from Maven Central on the
 * first run (Java 17+ and Maven needed) and found in the cache afterwards, so `npm test` on a
 * fresh clone needs no separate step.
 */
import { fetchKafka } from '../kafka/index.js';

export async function setup(): Promise<void> {
  await fetchKafka({ progress: (line) => process.stderr.write(`test setup: ${line}\n`) });
}
