/**
 * Before any test file: the Java tools the tests run, fetched from Maven Central on the first
 * run (Java 17+ and Maven needed) and found in the cache afterwards, so `npm test` on a fresh
 * clone needs no separate step: the local Apache Kafka broker, the local S3 server (S3Proxy)
 * and Delta Kernel, the independent reader of the archive's Delta tables.
 */
import { fetchKafka } from '../kafka/index.js';
import { s3proxy } from '../s3/index.js';
import { deltaKernel } from './helpers/delta.js';

export async function setup(): Promise<void> {
  const progress = (line: string) => process.stderr.write(`test setup: ${line}\n`);
  await fetchKafka({ progress });
  await s3proxy.fetch({ progress });
  await deltaKernel.fetch({ progress });
}
