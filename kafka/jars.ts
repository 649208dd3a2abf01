/**
 * The Apache Kafka release vcam runs locally, fetched from Maven Central by `vcam kafka fetch`
 * (Maven resolves kafka/pom.xml) into a per-version cache, so the second fetch asks no network.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VcamError } from '../common/errors.js';
import { PACKAGE_ROOT } from '../common/paths.js';

const execFileP = promisify(execFile);

export const KAFKA_DIR = join(PACKAGE_ROOT, 'kafka');
const POM = join(KAFKA_DIR, 'pom.xml');

/** The pinned release, read from kafka/pom.xml so the version lives in one place. */
export const KAFKA_VERSION = (() => {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(POM, 'utf8'));
  if (!m) throw new Error(`${POM} has no <kafka.version>`);
  return m[1]!;
})();

export const FETCH_HINT = 'run `vcam kafka fetch` (or `npm run kafka:fetch`) once; it needs Java 17+ and Maven';

/** Where the jars are kept: $VCAM_KAFKA_HOME, else ~/.cache/vcam/kafka-<version>. */
export function kafkaHome(): string {
  if (process.env.VCAM_KAFKA_HOME) return process.env.VCAM_KAFKA_HOME;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'vcam', `kafka-${KAFKA_VERSION}`);
}

const libsOf = (home: string) => join(home, 'libs');
// Written last by a fetch, so a fetch cut short is never mistaken for a complete one.
const markerOf = (home: string) => join(home, 'complete');

/** The classpath of the fetched release; a clear error saying how to fetch it when it is missing. */
export function kafkaClasspath(home = kafkaHome()): string {
  if (!existsSync(markerOf(home))) {
    throw new VcamError('UNAVAILABLE', `Apache Kafka ${KAFKA_VERSION} is not fetched (nothing complete in ${home}): ${FETCH_HINT}`);
  }
  return `${libsOf(home)}/*`;
}

async function have(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args, { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** Checks that a `java` is on PATH; Kafka 4 brokers need Java 17 or newer. */
export async function requireJava(): Promise<void> {
  if (!(await have('java', ['-version']))) {
    throw new VcamError('UNAVAILABLE', 'java is not on PATH: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless), then ' + FETCH_HINT);
  }
}

/**
 * Copies the release's runtime jars into the cache with Maven. A complete cache is left alone
 * (no Maven, no network); `progress` hears one line per step.
 */
export async function fetchKafka(opts: { home?: string; progress?: (line: string) => void } = {}): Promise<{ home: string; fetched: boolean }> {
  const home = opts.home ?? kafkaHome();
  const say = opts.progress ?? (() => undefined);
  if (existsSync(markerOf(home))) {
    say(`Apache Kafka ${KAFKA_VERSION} already in ${home}`);
    return { home, fetched: false };
  }
  await requireJava();
  if (!(await have('mvn', ['-v']))) {
    throw new VcamError('UNAVAILABLE', 'mvn is not on PATH: install Apache Maven (Debian: apt-get install maven) to fetch Kafka from Maven Central');
  }
  await fs.mkdir(home, { recursive: true });
  const staging = `${libsOf(home)}.tmp-${process.pid}`;
  await fs.rm(staging, { recursive: true, force: true });
  say(`fetching Apache Kafka ${KAFKA_VERSION} from Maven Central into ${home}`);
  try {
    await execFileP('mvn', ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'], { timeout: 15 * 60_000, maxBuffer: 16 << 20 });
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    const e = err as { stdout?: string; stderr?: string; message?: string };
    throw new VcamError('UNAVAILABLE', `Maven could not fetch Apache Kafka ${KAFKA_VERSION}:\n${(e.stdout || '') + (e.stderr || '') || e.message}`);
  }
  await fs.rm(libsOf(home), { recursive: true, force: true });
  await fs.rename(staging, libsOf(home));
  await fs.writeFile(markerOf(home), `${KAFKA_VERSION}\n`);
  say(`Apache Kafka ${KAFKA_VERSION}: ${(await fs.readdir(libsOf(home))).length} jars in ${libsOf(home)}`);
  return { home, fetched: true };
}
