/**
 * The Apache Kafka release vcam runs locally, fetched from Maven Central by `vcam kafka fetch`
 * (Maven resolves kafka/pom.xml) into a per-version cache, so the second fetch asks no network.
 */
import { join } from 'node:path';
import { mavenTool } from '../common/maven.js';
import { PACKAGE_ROOT } from '../common/paths.js';

export const KAFKA_DIR = join(PACKAGE_ROOT, 'kafka');

export const FETCH_HINT = 'run `vcam kafka fetch` (or `npm run kafka:fetch`) once; it needs Java 17+ and Maven';

const kafka = mavenTool({ name: 'Apache Kafka', pom: join(KAFKA_DIR, 'pom.xml'), versionProperty: 'kafka.version', homeEnv: 'VCAM_KAFKA_HOME', cacheName: 'kafka', fetchHint: FETCH_HINT });

/** The pinned release, read from kafka/pom.xml so the version lives in one place. */
export const KAFKA_VERSION = kafka.version;

/** Where the jars are kept: $VCAM_KAFKA_HOME, else ~/.cache/vcam/kafka-<version>. */
export const kafkaHome = (): string => kafka.home();

/** The classpath of the fetched release; a clear error saying how to fetch it when it is missing. */
export const kafkaClasspath = (home = kafkaHome()): string => kafka.classpath(home);

/** Checks that a `java` is on PATH; Kafka 4 brokers need Java 17 or newer. */
export const requireJava = (): Promise<void> => kafka.requireJava();

/** Copies the release's runtime jars into the cache; a complete cache is left alone (no Maven, no network). */
export const fetchKafka = (opts: { home?: string; progress?: (line: string) => void } = {}): Promise<{ home: string; fetched: boolean }> => kafka.fetch(opts);
