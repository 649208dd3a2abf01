/**
 * Java tools vcam runs unmodified (Apache Kafka, S3Proxy, the Delta Kernel the tests read with),
 * each pinned by a pom.xml and fetched from Maven Central by `mvn dependency:copy-dependencies`
 * into a per-version cache, so the second fetch asks no network:
 *
 *   const s3proxy = mavenTool({ name: 'S3Proxy', pom, versionProperty: 's3proxy.version', homeEnv: 'VCAM_S3PROXY_HOME', cacheName: 's3proxy', fetchHint });
 *   await s3proxy.fetch({ progress: console.error });   // once; a complete cache is left alone
 *   spawn('java', ['-cp', s3proxy.classpath(), …]);        // throws, naming the fetch, when absent
 *
 * Maven only resolves; nothing is built. The version lives in the pom alone.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VcamError } from './errors.js';

const execFileP = promisify(execFile);

export interface MavenToolSpec {
  /** As people know it, for messages: "Apache Kafka". */
  name: string;
  /** The pom.xml whose dependencies are the tool's runtime. */
  pom: string;
  /** The pom property that holds the pinned release, e.g. `kafka.version`. */
  versionProperty: string;
  /** An environment variable naming an install to use instead of the cache. */
  homeEnv: string;
  /** The cache directory is `<cache>/vcam/<cacheName>-<version>`. */
  cacheName: string;
  /** One sentence saying how to fetch it, ending every "missing" message. */
  fetchHint: string;
}

export interface MavenTool {
  readonly name: string;
  readonly version: string;
  readonly fetchHint: string;
  /** Where the jars are kept: $<homeEnv>, else ~/.cache/vcam/<cacheName>-<version>. */
  home(): string;
  /** The directory of jars inside a home. */
  libs(home?: string): string;
  /** `<libs>/*` of a complete fetch; a clear error saying how to fetch it when it is missing. */
  classpath(home?: string): string;
  /** Checks that a `java` is on PATH. */
  requireJava(): Promise<void>;
  /** Copies the runtime jars into the cache with Maven; a complete cache is left alone (no Maven, no network). */
  fetch(opts?: { home?: string; progress?: (line: string) => void }): Promise<{ home: string; fetched: boolean }>;
}

async function have(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args, { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

export function mavenTool(spec: MavenToolSpec): MavenTool {
  const { name, pom, fetchHint } = spec;
  const prop = spec.versionProperty.replace(/\./g, '\\.');
  const m = new RegExp(`<${prop}>([^<]+)</${prop}>`).exec(readFileSync(pom, 'utf8'));
  if (!m) throw new Error(`${pom} has no <${spec.versionProperty}>`);
  const version = m[1]!;
  const libs = (home = tool.home()) => join(home, 'libs');
  // Written last by a fetch, so a fetch cut short is never mistaken for a complete one.
  const marker = (home: string) => join(home, 'complete');

  const requireJava = async () => {
    if (!(await have('java', ['-version']))) {
      throw new VcamError('UNAVAILABLE', `java is not on PATH: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless), then ${fetchHint}`);
    }
  };

  const tool: MavenTool = {
    name,
    version,
    fetchHint,
    home() {
      const env = process.env[spec.homeEnv];
      if (env) return env;
      const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
      return join(cache, 'vcam', `${spec.cacheName}-${version}`);
    },
    libs,
    classpath(home = tool.home()) {
      if (!existsSync(marker(home))) throw new VcamError('UNAVAILABLE', `${name} ${version} is not fetched (nothing complete in ${home}): ${fetchHint}`);
      return `${libs(home)}/*`;
    },
    requireJava,
    async fetch(opts = {}) {
      const home = opts.home ?? tool.home();
      const say = opts.progress ?? (() => undefined);
      if (existsSync(marker(home))) {
        say(`${name} ${version} already in ${home}`);
        return { home, fetched: false };
      }
      await requireJava();
      if (!(await have('mvn', ['-v']))) {
        throw new VcamError('UNAVAILABLE', `mvn is not on PATH: install Apache Maven (Debian: apt-get install maven) to fetch ${name} from Maven Central`);
      }
      await fs.mkdir(home, { recursive: true });
      // Copied aside and renamed into place, so a reader never sees half the jars.
      const staging = `${libs(home)}.tmp-${process.pid}`;
      await fs.rm(staging, { recursive: true, force: true });
      say(`fetching ${name} ${version} from Maven Central into ${home}`);
      try {
        await execFileP('mvn', ['-B', '-q', '-f', pom, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'], { timeout: 15 * 60_000, maxBuffer: 16 << 20 });
      } catch (err) {
        await fs.rm(staging, { recursive: true, force: true });
        const e = err as { stdout?: string; stderr?: string; message?: string };
        throw new VcamError('UNAVAILABLE', `Maven could not fetch ${name} ${version}:\n${(e.stdout || '') + (e.stderr || '') || e.message}`);
      }
      await fs.rm(libs(home), { recursive: true, force: true });
      await fs.rename(staging, libs(home));
      await fs.writeFile(marker(home), `${version}\n`);
      say(`${name} ${version}: ${(await fs.readdir(libs(home))).length} jars in ${libs(home)}`);
      return { home, fetched: true };
    },
  };
  return tool;
}
