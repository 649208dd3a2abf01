/**
 * The archive's object store on S3 (AWS, or any S3 API such as the local S3Proxy of `vcam s3`):
 * path-style URLs on an explicit endpoint, every request signed with AWS Signature V4 by
 * node:crypto, so no SDK is needed for the five calls the archive makes.
 *
 *   const store = openStore('s3://lake/events', { endpoint: 'http://127.0.0.1:9000', credentialsFile });
 *   await store.putIfAbsent('_delta_log/00000000000000000001.json', commit);   // If-None-Match: *
 *
 * Failures are VcamErrors: `CONNECTION` retriable for the network, timeouts and 5xx; refused
 * credentials, a missing bucket and other 4xx are not retriable. Failed requests are not retried
 * here, because a conditional PUT that timed out may have landed: only the caller can tell (the
 * Delta writer re-reads its txn), so it decides. The two exceptions are answers that say nothing
 * was done: S3's 409 ConditionalRequestConflict, and a kept-alive connection the server had closed.
 */
import { createHash, createHmac } from 'node:crypto';
import { createReadStream, promises as fs, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve as resolvePath } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Spec } from './config.js';
import { ConfigError, VcamError } from './errors.js';
import { checkKey, LocalStore, type ObjectStore, type StoredObject } from './objectstore.js';
import { sleep } from './retry.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials (STS) come with a token, sent as x-amz-security-token. */
  sessionToken?: string;
}

export interface S3Options {
  /** Scheme, host and port, e.g. `http://127.0.0.1:9000`; default `https://s3.<region>.amazonaws.com`. */
  endpoint?: string;
  /** Default us-east-1 (what S3Proxy and MinIO accept whatever their location). */
  region?: string;
  credentials: S3Credentials;
  /** Keys per ListObjectsV2 page (S3's own maximum, 1000, by default); tests make it small. */
  maxKeys?: number;
  /** A request fails (retriable) when its connection is silent this long. Default 60 s. */
  idleTimeoutMs?: number;
}

interface S3Response {
  status: number;
  body: Buffer;
}

interface S3Request {
  /** For messages: `GET key`, `LIST prefix`… */
  what: string;
  method: string;
  /** The object's full key in the bucket; none for the bucket itself. */
  key?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  payload?: Payload;
  /** Sent again once if a kept-alive connection turns out to be closed (see send). */
  idempotent: boolean;
}

interface Payload {
  body?: Buffer;
  /** A file streamed as the body, with its length and hex SHA-256 worked out beforehand. */
  file?: { path: string; size: number; sha256: string };
}

const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');
// RFC 3986 unreserved characters stay; everything else, `!'()*` included, is %-encoded, as SigV4 wants.
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Parameters encoded, sorted by name then value (SigV4's canonical query string, and what is sent). */
const canonicalQuery = (url: URL) =>
  [...url.searchParams]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ka, va], [kb, vb]) => byCodeUnits(ka, kb) || byCodeUnits(va, vb))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');

/** Signs a request (AWS Signature V4, service s3): returns the headers to send, `authorization` among them. */
export function signV4(req: { method: string; url: URL; headers: Record<string, string>; payloadSha256: string; region: string; credentials: S3Credentials; now?: Date }): Record<string, string> {
  const amzDate = (req.now ?? new Date()).toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { host: req.url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': req.payloadSha256 };
  if (req.credentials.sessionToken) headers['x-amz-security-token'] = req.credentials.sessionToken;
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const names = Object.keys(headers).sort();
  const query = canonicalQuery(req.url);
  const canonical = [req.method, req.url.pathname, query, names.map((n) => `${n}:${headers[n]!.trim().replace(/\s+/g, ' ')}\n`).join(''), names.join(';'), req.payloadSha256].join('\n');
  const scope = `${day}/${req.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${req.credentials.secretAccessKey}`, day), req.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${req.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const xmlText = (s: string) => s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e: string) => (e[0] === '#' ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : (XML_ENTITIES[e] ?? m)));
const xmlField = (xml: string, tag: string) => {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  return m ? xmlText(m[1]!) : undefined;
};

/** An S3 bucket prefix: `s3://bucket/prefix`. */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string;
  private readonly region: string;
  private readonly credentials: S3Credentials;
  private readonly maxKeys: number;
  private readonly idleTimeoutMs: number;

  constructor(url: string, o: S3Options) {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (!m) throw new ConfigError(`"${url}" is not an S3 URL; write s3://bucket/prefix`);
    this.bucket = m[1]!;
    this.prefix = m[2]!.replace(/\/+$/, '');
    if (this.prefix) checkKey(this.prefix);
    this.url = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.region = o.region ?? 'us-east-1';
    this.endpoint = (o.endpoint ?? `https://s3.${this.region}.amazonaws.com`).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+$/.test(this.endpoint)) throw new ConfigError(`S3 endpoint "${this.endpoint}" should be a scheme, host and port only, e.g. http://127.0.0.1:9000`);
    this.credentials = o.credentials;
    this.maxKeys = o.maxKeys ?? 1000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
  }

  private objectKey(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async get(key: string): Promise<Buffer | undefined> {
    const what = `GET ${key}`;
    const res = await this.send({ what, method: 'GET', key: this.objectKey(key), idempotent: true });
    if (res.status === 404 && this.s3Code(res) === 'NoSuchKey') return undefined;
    return this.expect(res, [200], what).body;
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    const req: S3Request = { what: `PUT ${key} (if absent)`, method: 'PUT', key: this.objectKey(key), headers: { 'if-none-match': '*' }, payload: { body }, idempotent: false };
    // AWS answers 409 when another conditional write of the key is in flight: neither has
    // landed yet, so asking again is how the race gets its one winner.
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(req);
      if (res.status === 200) return true;
      if (res.status === 412) return false;
      if (res.status !== 409 || this.s3Code(res) !== 'ConditionalRequestConflict') this.expect(res, [200, 412], req.what);
      if (attempt >= 10) throw new VcamError('CONNECTION', `S3 at ${this.where(req.what)} still reports a conflicting write in flight after ${attempt + 1} tries; try again`, { retriable: true });
      await sleep(50 * 2 ** Math.min(attempt, 5));
    }
  }

  async putFile(key: string, path: string): Promise<number> {
    // The signature covers the body's SHA-256, so the file is read twice: hashed, then sent.
    const size = (await fs.stat(path)).size;
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), hash);
    const what = `PUT ${key}`;
    this.expect(await this.send({ what, method: 'PUT', key: this.objectKey(key), payload: { file: { path, size, sha256: hash.digest('hex') } }, idempotent: true }), [200], what);
    return size;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      // encoding-type=url: a key may hold characters XML 1.0 cannot carry.
      const query: Record<string, string> = { 'list-type': '2', prefix: full, 'max-keys': String(this.maxKeys), 'encoding-type': 'url' };
      if (token) query['continuation-token'] = token;
      const what = `LIST "${prefix}"`;
      const xml = this.expect(await this.send({ what, method: 'GET', query, idempotent: true }), [200], what).body.toString('utf8');
      const urlEncoded = xmlField(xml, 'EncodingType') === 'url';
      for (const [, entry] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const raw = xmlField(entry!, 'Key')!;
        const key = urlEncoded ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw;
        out.push({ key: key.slice(strip), size: Number(xmlField(entry!, 'Size')), modified: Date.parse(xmlField(entry!, 'LastModified')!) });
      }
      token = xmlField(xml, 'IsTruncated') === 'true' ? xmlField(xml, 'NextContinuationToken') : undefined;
    } while (token);
    return out.sort((a, b) => byCodeUnits(a.key, b.key));
  }

  async delete(key: string): Promise<void> {
    const what = `DELETE ${key}`;
    this.expect(await this.send({ what, method: 'DELETE', key: this.objectKey(key), idempotent: true }), [204, 200], what);
  }

  /** Creates the bucket; one that exists and is ours already is fine. */
  async ensureBucket(): Promise<void> {
    // Outside us-east-1, AWS wants the region named in the body.
    const body = this.region === 'us-east-1' ? undefined : Buffer.from(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${this.region}</LocationConstraint></CreateBucketConfiguration>`);
    const what = 'create bucket';
    const res = await this.send({ what, method: 'PUT', payload: { body }, idempotent: true });
    if (res.status === 409 && this.s3Code(res) === 'BucketAlreadyOwnedByYou') return;
    this.expect(res, [200], what);
  }

  private s3Code(res: S3Response): string | undefined {
    return xmlField(res.body.toString('utf8'), 'Code');
  }

  /** The response when its status is one of `ok`; else the error a caller can act on. */
  private expect(res: S3Response, ok: number[], what: string): S3Response {
    if (ok.includes(res.status)) return res;
    const text = res.body.toString('utf8');
    const code = xmlField(text, 'Code') ?? `HTTP ${res.status}`;
    const detail = `${code}${xmlField(text, 'Message') ? `: ${xmlField(text, 'Message')}` : ''}`;
    const where = this.where(what);
    if (code === 'RequestTimeTooSkewed') throw new VcamError('CONFIG_INVALID', `${where} refused the request because this machine's clock is off by more than 15 minutes; fix the clock (NTP)`);
    if (res.status === 403) throw new VcamError('CONFIG_INVALID', `the S3 credentials were refused by ${where}: ${detail}; check the access key id and secret`);
    if (code === 'NoSuchBucket') throw new VcamError('CONFIG_INVALID', `S3 bucket "${this.bucket}" does not exist at ${this.endpoint}; create it first`);
    if (res.status >= 500 || code === 'SlowDown') throw new VcamError('CONNECTION', `S3 at ${where} failed with ${res.status} ${detail}; try again`, { retriable: true });
    throw new VcamError('CONNECTION', `S3 at ${where} answered ${res.status} ${detail}`);
  }

  private where(what: string): string {
    return `${this.endpoint} (${this.url}, ${what})`;
  }

  /**
   * One signed request. `idempotent` requests are sent again once when a kept-alive connection
   * turns out to have been closed by the server before it read them (Node's `reusedSocket` case).
   */
  private async send(r: S3Request): Promise<S3Response> {
    const { method, key, query = {}, headers = {}, payload = {} } = r;
    const url = new URL(`${this.endpoint}/${uriEncode(this.bucket)}${key === undefined ? '' : `/${key.split('/').map(uriEncode).join('/')}`}`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const sha256 = payload.file?.sha256 ?? (payload.body ? createHash('sha256').update(payload.body).digest('hex') : EMPTY_SHA256);
    for (let attempt = 0; ; attempt++) {
      const signed = signV4({ method, url, headers, payloadSha256: sha256, region: this.region, credentials: this.credentials });
      // Sent exactly as signed: URL.search would encode differently from SigV4's canonical form.
      const search = canonicalQuery(url);
      const length = payload.file?.size ?? payload.body?.length ?? 0;
      try {
        return await this.exchange(method, url, `${url.pathname}${search ? `?${search}` : ''}`, { ...signed, ...(method === 'PUT' ? { 'content-length': String(length) } : {}) }, payload);
      } catch (err) {
        if (r.idempotent && attempt === 0 && (err as { reusedSocket?: boolean }).reusedSocket) continue;
        const e = err as NodeJS.ErrnoException;
        const problem = e.code === 'ETIMEDOUT' ? `was silent for ${this.idleTimeoutMs} ms` : `could not be reached (${e.code ?? e.message})`;
        throw new VcamError(e.code === 'ETIMEDOUT' ? 'TIMEOUT' : 'CONNECTION', `S3 at ${this.where(r.what)} ${problem}; try again`, { retriable: true, cause: err });
      }
    }
  }

  private exchange(method: string, url: URL, path: string, headers: Record<string, string>, payload: Payload): Promise<S3Response> {
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)({ method, host: url.hostname, port: url.port || undefined, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(Object.assign(new Error('idle timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      if (payload.file) {
        pipeline(createReadStream(payload.file.path), req).catch((err: unknown) => req.destroy(err as Error));
      } else {
        req.end(payload.body);
      }
    });
  }
}

/**
 * S3 credentials, from a file when one is given, else from the standard environment variables.
 * The file is either what `vcam s3` writes (`AWS_ACCESS_KEY_ID=…` lines) or the INI form of
 * ~/.aws/credentials, read from its `[default]` section (or `profile`'s).
 */
export function credentialsFrom(o: { file?: string; env?: NodeJS.ProcessEnv; profile?: string }): S3Credentials {
  const env = o.env ?? process.env;
  if (o.file) {
    let text: string;
    try {
      text = readFileSync(o.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the S3 credentials file ${o.file}: ${(err as Error).message}`);
    }
    const profile = o.profile ?? env.AWS_PROFILE ?? 'default';
    const values: Record<string, string> = {};
    let section: string | undefined;
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      if (!line || line.startsWith('#') || line.startsWith(';')) continue;
      const header = /^\[\s*(.+?)\s*\]$/.exec(line);
      if (header) {
        section = header[1];
        continue;
      }
      const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
      // Lines before any section are the `vcam s3` form; inside an INI file only the profile counts.
      if (kv && (section === undefined || section === profile)) values[kv[1]!.toLowerCase()] = kv[2]!.trim();
    }
    const accessKeyId = values.aws_access_key_id;
    const secretAccessKey = values.aws_secret_access_key;
    if (!accessKeyId || !secretAccessKey) {
      throw new ConfigError(`the S3 credentials file ${o.file} has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (as KEY=value lines, or aws_access_key_id and aws_secret_access_key in its [${profile}] section)`);
    }
    return { accessKeyId, secretAccessKey, ...(values.aws_session_token ? { sessionToken: values.aws_session_token } : {}) };
  }
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
  }
  throw new ConfigError(
    'no S3 credentials: give a credentials file (AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines, as `vcam s3` writes, or an ~/.aws/credentials-style [default] section) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
  );
}

export interface OpenStoreOptions extends Partial<S3Options> {
  /** Where S3 credentials come from when `credentials` is not given (see credentialsFrom). */
  credentialsFile?: string;
  env?: NodeJS.ProcessEnv;
}

/** The store a URL names: `s3://bucket/prefix` on S3, a `file://` URL or a path on this machine. */
export function openStore(url: string, o: OpenStoreOptions = {}): ObjectStore {
  if (url.startsWith('s3://')) {
    const credentials = o.credentials ?? credentialsFrom({ file: o.credentialsFile, env: o.env });
    return new S3Store(url, { ...o, credentials });
  }
  if (url.startsWith('file://')) return new LocalStore(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new ConfigError(`"${url}": the archive goes to s3://bucket/prefix, a file:// URL or a directory`);
  return new LocalStore(resolvePath(url));
}

/** The flags (and environment variables) of every command that reaches an s3:// URL. */
export const S3_OPTIONS = {
  s3Endpoint: { type: 'string', env: 'VCAM_S3_ENDPOINT', description: 'S3 API endpoint for s3:// URLs (default AWS: https://s3.<region>.amazonaws.com); path-style requests' },
  s3Region: { type: 'string', default: 'us-east-1', env: 'AWS_REGION', description: 'S3 region (for request signing)' },
  s3CredentialsFile: {
    type: 'string',
    env: 'VCAM_S3_CREDENTIALS_FILE',
    description: 'file with AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines, or an ~/.aws/credentials-style [default] section (else the standard AWS environment variables)',
  },
} as const satisfies Spec;

/** The store `url` names, reached with those flags. */
export function openStoreFrom(url: string, c: { s3Endpoint?: string; s3Region?: string; s3CredentialsFile?: string }): ObjectStore {
  return openStore(url, { endpoint: c.s3Endpoint, region: c.s3Region, credentialsFile: c.s3CredentialsFile });
}
