/**
 * An independent reader of Delta tables for tests: Delta Kernel for Java (the Delta project's
 * reference implementation, fetched by Maven like the local Kafka), run on test/delta/DeltaCheck.java.
 * Neither vcam's log code nor ClickHouse reads the table here, so a test's counts do not share
 * a writer's mistakes.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VcamError } from '../../common/errors.js';
import { javaCommand } from '../../common/jvm.js';
import { mavenTool } from '../../common/maven.js';
import { PACKAGE_ROOT } from '../../common/paths.js';

const execFileP = promisify(execFile);
const DELTA_DIR = join(PACKAGE_ROOT, 'test', 'delta');

/** $VCAM_DELTA_KERNEL_HOME, else ~/.cache/vcam/delta-kernel-<version>; test/global-setup.ts fetches it. */
export const deltaKernel = mavenTool({
  name: 'Delta Kernel',
  pom: join(DELTA_DIR, 'pom.xml'),
  versionProperty: 'delta.version',
  homeEnv: 'VCAM_DELTA_KERNEL_HOME',
  cacheName: 'delta-kernel',
  fetchHint: 'test/global-setup.ts fetches it before the tests (Java 17+ and Maven needed)',
});

export interface DeltaTableReading {
  /** The latest snapshot's version. */
  version: number;
  partitionColumns: string[];
  /** `type` is Delta's JSON form: "long", "timestamp"…, or an object for nested types. */
  schema: { name: string; type: unknown; nullable: boolean }[];
  /** The latest txn version of the appId asked about, null when it never committed. */
  txnVersion: number | null;
  /** Live data files. */
  files: number;
  rows: number;
  /** Rows per partition value (`c=v/…` with several partition columns). */
  rowsPerPartition: Record<string, number>;
  /** With an id column: how many live rows carry each value (2 is a double), and its nulls. */
  eventIds?: Record<string, number>;
  idNulls?: number;
}

/** Reads the table at `uri` (a file:// URI: a directory, or S3Proxy's basedir/bucket/prefix). */
export async function readDeltaTable(uri: string, appId: string, idColumn?: string): Promise<DeltaTableReading> {
  await deltaKernel.fetch();
  const [cmd, args] = javaCommand(['-Xmx256m', '-XX:+UseSerialGC', '-XX:CICompilerCount=2', '-XX:TieredStopAtLevel=1', '-cp', deltaKernel.classpath(), join(DELTA_DIR, 'DeltaCheck.java'), uri, appId, ...(idColumn ? [idColumn] : [])]);
  let stdout: string;
  try {
    ({ stdout } = await execFileP(cmd, args, { timeout: 120_000, maxBuffer: 256 << 20 }));
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    throw new VcamError('UNAVAILABLE', `Delta Kernel could not read ${uri}: ${(e.stderr || e.message || '').trim().split('\n').slice(0, 30).join('\n')}`);
  }
  // Its loggers may write to stdout too; the reading is the last line.
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as DeltaTableReading;
}
