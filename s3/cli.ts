/** `vcam s3`: a local S3 API server (S3Proxy) in the foreground; `vcam s3 fetch` brings its jar. */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineCommand } from '../common/config.js';
import { EXIT, parseOrHelp, runService } from '../common/cli.js';
import { VcamError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { credentialsFrom, type S3Credentials } from '../common/s3.js';
import { refuseShared } from '../common/secrets.js';
import { S3PROXY_VERSION, s3proxy } from './jars.js';
import { LocalS3 } from './server.js';

export const s3Command = defineCommand({
  name: 'vcam s3',
  usage: 'vcam s3 --data-dir DIR [options]\n       vcam s3 fetch',
  summary:
    `A local S3 API (S3Proxy ${S3PROXY_VERSION}) on 127.0.0.1 for the archive: path-style, AWS\n` +
    'Signature V2 or V4, conditional PUT (If-None-Match: *). Objects are plain files in\n' +
    '--data-dir/buckets/<bucket>/<key>. Its credentials are made on first use and kept in\n' +
    '--data-dir/s3.credentials (mode 0600, AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines).\n' +
    'For development and tests; production uses its own S3. `vcam s3 fetch` copies the jar from\n' +
    'Maven Central once (Java 17+ and Maven needed); later runs need no network.',
  options: {
    dataDir: { type: 'string', required: true, env: 'VCAM_S3_DATA_DIR', description: 'data directory (the objects, the credentials and its settings)' },
    port: { type: 'int', default: 9000, env: 'VCAM_S3_PORT', description: 'port on 127.0.0.1' },
    bucket: { type: 'string', env: 'VCAM_S3_BUCKET', description: 'a bucket to create if missing' },
    heap: { type: 'bytes', default: '192MiB', env: 'VCAM_S3_HEAP', description: "the server JVM's maximum heap" },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

const fetchCommand = defineCommand({
  name: 'vcam s3 fetch',
  usage: 'vcam s3 fetch',
  summary: `Copies S3Proxy ${S3PROXY_VERSION}'s jar from Maven Central into the cache ($VCAM_S3PROXY_HOME, default ~/.cache/vcam/s3proxy-${S3PROXY_VERSION}). Does nothing when it is there.`,
  options: {},
});

/** The credentials of an earlier start: the same at every start, so clients set up once keep working. */
function savedCredentials(file: string): S3Credentials | undefined {
  if (!existsSync(file)) return undefined;
  refuseShared(file);
  return credentialsFrom({ file, env: {} });
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'fetch') {
    const parsed = parseOrHelp(fetchCommand, argv.slice(1));
    if (typeof parsed === 'number') return parsed;
    if (parsed.positionals.length) throw new VcamError('USAGE', `unexpected argument "${parsed.positionals[0]}"; run \`vcam s3 fetch --help\``);
    await s3proxy.fetch({ progress: (line) => process.stderr.write(`${line}\n`) });
    return EXIT.OK;
  }
  return runService(s3Command, argv, async (c, positionals) => {
    if (positionals.length) throw new VcamError('USAGE', `unexpected argument "${positionals[0]}"; run \`vcam s3 --help\``);
    const log = createLogger('s3', c.logLevel);
    const credentialsFile = join(c.dataDir, 's3.credentials');
    const saved = savedCredentials(credentialsFile);
    const server = new LocalS3({
      dataDir: c.dataDir,
      port: c.port,
      bucket: c.bucket,
      identity: saved?.accessKeyId,
      credential: saved?.secretAccessKey,
      heapMb: Math.max(96, Math.floor(c.heap / 2 ** 20)),
      onOutput: (line) => log.info({ s3proxy: true }, line),
    });
    await server.start();
    if (!saved) writeFileSync(credentialsFile, `AWS_ACCESS_KEY_ID=${server.identity}\nAWS_SECRET_ACCESS_KEY=${server.credential}\n`, { mode: 0o600, flag: 'wx' });
    log.info({ endpoint: server.endpoint, credentialsFile, bucket: c.bucket, version: server.version, dataDir: c.dataDir, pid: server.pid }, `S3 API serving at ${server.endpoint}; credentials in ${credentialsFile}`);
    return { close: () => server.stop() };
  });
}
