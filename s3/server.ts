/**
 * A real S3 API on loopback: S3Proxy (the release s3/pom.xml pins, unmodified) on its filesystem
 * backend, for `vcam s3`, development and the tests of the archive. Objects are plain files at
 * `basedir/<bucket>/<key>`, so a test can also read them without S3.
 *
 *   const s3 = await startLocalS3({ dataDir, bucket: 'lake' });
 *   s3.endpoint                   // http://127.0.0.1:PORT (path-style, SigV2 or SigV4)
 *   s3.store('s3://lake/t')       // an S3Store signed with its credentials
 *   await s3.kill();              // kill -9: "S3 is down"
 *   await s3.start();             // same port, same objects, same credentials
 *   await s3.stop();              // SIGTERM
 *
 * Like the local Kafka broker, the JVM is small (serial GC, two JIT threads) and dies with the
 * process that started it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VcamError } from '../common/errors.js';
import { freePort } from '../common/http.js';
import { JavaChild, smallJvm } from '../common/jvm.js';
import { sleep } from '../common/retry.js';
import { S3Store, type S3Credentials, type S3Options } from '../common/s3.js';
import { s3proxy } from './jars.js';

export interface LocalS3Options {
  /** Holds the objects (`buckets/`), the generated s3proxy.properties and its output (`s3proxy.log`). */
  dataDir: string;
  /** Port on 127.0.0.1; 0 (default) picks a free one, kept across restarts. */
  port?: number;
  /** Access key id and secret clients sign with; random ones when not given. */
  identity?: string;
  credential?: string;
  /** A bucket created (if missing) at every start. */
  bucket?: string;
  /** Maximum Java heap in MiB. Default 192: it streams objects to files and holds little. */
  heapMb?: number;
  /** Where its output goes besides `s3proxy.log`: a line callback (e.g. to stderr). */
  onOutput?: (line: string) => void;
  /** How long a start may take before it fails. Default 60 s. */
  startTimeoutMs?: number;
  /** S3Proxy's install (jars); default the `vcam s3 fetch` cache. */
  home?: string;
}

export class LocalS3 {
  readonly dataDir: string;
  /** The filesystem backend's directory: the object `key` of `bucket` is the file `basedir/bucket/key`. */
  readonly basedir: string;
  readonly identity: string;
  readonly credential: string;
  readonly version = s3proxy.version;
  port = 0;
  private readonly o: LocalS3Options;
  private readonly classpath: string;
  private readonly jvm: JavaChild;
  private javaChecked?: Promise<void>;

  constructor(o: LocalS3Options) {
    this.o = o;
    this.dataDir = o.dataDir;
    this.basedir = join(o.dataDir, 'buckets');
    this.classpath = s3proxy.classpath(o.home ?? s3proxy.home());
    this.identity = o.identity ?? `vcam-${randomBytes(6).toString('hex')}`;
    this.credential = o.credential ?? randomBytes(24).toString('base64url');
    this.jvm = new JavaChild({ logFile: join(this.dataDir, 's3proxy.log'), onOutput: o.onOutput });
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get credentials(): S3Credentials {
    return { accessKeyId: this.identity, secretAccessKey: this.credential };
  }

  get pid(): number | undefined {
    return this.jvm.pid;
  }

  get running(): boolean {
    return this.jvm.running;
  }

  /** An S3 client of this server; `url` defaults to the whole of `bucket`. */
  store(url = `s3://${this.o.bucket ?? 'lake'}`, extra: Partial<S3Options> = {}): S3Store {
    return new S3Store(url, { endpoint: this.endpoint, credentials: this.credentials, ...extra });
  }

  /** Starts the JVM, waits until it answers HTTP, creates `bucket`. */
  async start(): Promise<void> {
    if (this.running) return;
    await (this.javaChecked ??= s3proxy.requireJava());
    this.port ||= this.o.port || (await freePort());
    mkdirSync(this.basedir, { recursive: true });
    const props = this.writeProperties();
    this.jvm.start([...smallJvm(this.o.heapMb ?? 192), '-cp', this.classpath, 'org.gaul.s3proxy.Main', '--properties', props]);
    try {
      await this.waitServing(this.o.startTimeoutMs ?? 60_000);
      if (this.o.bucket) await this.store(`s3://${this.o.bucket}`).ensureBucket();
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** kill -9: requests in flight fail, the objects stay. */
  kill(): Promise<void> {
    return this.jvm.kill();
  }

  /** SIGTERM (S3Proxy's shutdown hook stops Jetty); SIGKILL after 15 s. */
  stop(): Promise<void> {
    return this.jvm.stop(15_000);
  }

  private writeProperties(): string {
    const file = join(this.dataDir, 's3proxy.properties');
    // A properties file reads `\` as an escape.
    const value = (s: string) => s.replace(/\\/g, '\\\\');
    // It holds the secret: readable by its owner only.
    writeFileSync(
      file,
      `# Written by vcam at every start; loopback only.
s3proxy.endpoint=${this.endpoint}
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${value(this.identity)}
s3proxy.credential=${value(this.credential)}
jclouds.provider=filesystem
jclouds.filesystem.basedir=${value(this.basedir)}
# Clients such as ClickHouse's object_store send headers S3Proxy does not know (x-amz-security-token); without this they get 501.
s3proxy.ignore-unknown-headers=true
`,
      { mode: 0o600 },
    );
    return file;
  }

  /** Any HTTP answer to `GET /` (403 without a signature) means Jetty is serving. */
  private async waitServing(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new VcamError('UNAVAILABLE', `S3Proxy exited during start-up (see ${join(this.dataDir, 's3proxy.log')}):\n${this.jvm.lastOutput()}`);
      const answered = await fetch(`${this.endpoint}/`, { signal: AbortSignal.timeout(2_000) }).then(
        async (r) => (await r.arrayBuffer(), true),
        () => false,
      );
      if (answered) return;
      if (Date.now() > deadline) throw new VcamError('TIMEOUT', `S3Proxy did not answer on ${this.endpoint} within ${timeoutMs} ms:\n${this.jvm.lastOutput()}`, { retriable: true });
      await sleep(100);
    }
  }
}

export async function startLocalS3(o: LocalS3Options): Promise<LocalS3> {
  const s3 = new LocalS3(o);
  await s3.start();
  return s3;
}
