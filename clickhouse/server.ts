/**
 * `vcam clickhouse`: the embedded ClickHouse. One process owns a chDB data directory (the
 * ClickHouse engine in-process, npm `chdb`) and serves the part of ClickHouse's HTTP interface
 * that @clickhouse/client and Grafana's ClickHouse plugin use, so every component connects by
 * URL exactly as to a real server.
 *
 * Supported: `GET /ping`; `GET|POST /?query=…` and `POST /` with the query in the body;
 * inserts as `?query=INSERT … FORMAT X` with the data in the body; `param_*` query parameters;
 * `database`; settings as URL parameters (applied to that request only); gzip request and
 * response bodies; `X-ClickHouse-*` response headers; errors in ClickHouse's text form with
 * `X-ClickHouse-Exception-Code`. Not supported (documented in docs/clickhouse.md): sessions
 * (`session_id`), users and quotas (credentials are checked against one optional user),
 * progress headers, the native TCP protocol, `multipart` external tables.
 *
 * Requests run one at a time: settings are applied with SET on the shared chDB session and
 * reset afterwards, so two requests must not interleave.
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzip, gzipSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdirSync } from 'node:fs';
import { Session } from 'chdb';
import { silentLogger, type Logger } from '../common/log.js';
import { sameSecret } from '../common/secrets.js';
import { judge, type Refusal } from './allowlist.js';
import { insertDataStart, secondStatementAt } from './statements.js';

export interface ClickHouseServerOptions {
  dataDir: string;
  port: number;
  host?: string;
  /** When set, requests must authenticate as this user (basic auth or X-ClickHouse-User/Key). */
  user?: string;
  password?: string;
  /** Largest request body, and largest body once a gzip request body is inflated. Default 256 MiB. */
  maxBodyBytes?: number;
  /** Requests waiting for the engine beyond this are refused with 503 and Retry-After. Default 1,000. */
  maxQueuedRequests?: number;
  /** Origins (scheme://host[:port]) whose browser pages may call this server; none by default. */
  allowedOrigins?: string[];
  logger?: Logger;
}

const gunzipAsync = promisify(gunzip);

/** URL parameters that are part of the HTTP protocol, not engine settings. */
const PROTOCOL_PARAMS = new Set(['query', 'query_id', 'database', 'session_id', 'user', 'password', 'default_format', 'role', 'compress', 'decompress']);
/** Settings that only mean something to the HTTP server; the engine would refuse them. */
const HTTP_ONLY_SETTINGS = new Set([
  'wait_end_of_query',
  'send_progress_in_http_headers',
  'http_response_buffer_size',
  'http_headers_progress_interval_ms',
  'http_send_progress_interval_ms',
  'enable_http_compression',
  'http_zlib_compression_level',
  'http_response_compression_method',
  'http_native_compression_disable_checksumming_on_decompress',
  'output_format_json_quote_64bit_integers_for_http',
]);
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VERSION = '26.7';
const EXPLAIN = 'EXPLAIN AST ';

interface ChError {
  code: number;
  type: string;
  message: string;
}

/** The statement without its data or literals' tails: what a log line may carry. */
function statementHead(sql: string): string {
  const head = sql.slice(0, 200).replace(/\s+/g, ' ').trim();
  const format = /^(.*?\bFORMAT\s+\w+)/i.exec(head);
  return (format ? format[1]! : head).slice(0, 120);
}

export class ClickHouseServer {
  private readonly session: Session;
  private server?: Server;
  private queue: Promise<unknown> = Promise.resolve();
  /** HTTP requests queued or running on the engine. */
  private waiting = 0;
  private readonly log: Logger;
  private readonly verdicts = new Map<string, { write?: Refusal; read?: Refusal }>();
  port = 0;

  constructor(private readonly o: ClickHouseServerOptions) {
    mkdirSync(o.dataDir, { recursive: true });
    this.session = new Session(o.dataDir);
    this.log = o.logger ?? silentLogger;
  }

  async start(): Promise<void> {
    // Query parameters travel in the URL: allow what ClickHouse allows (http_max_uri_size, 1 MiB), not Node's 16 KiB.
    this.server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err }, 'request failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.port, this.o.host ?? '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Runs one statement on the engine directly (migrations at startup, tests). */
  exec(sql: string, settings: Record<string, string> = {}, params: Record<string, string> = {}, format = 'TabSeparated') {
    return this.serialised(() => this.run(sql, settings, params, format));
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async run(sql: string, settings: Record<string, string>, params: Record<string, string>, format: string, database?: string) {
    // An INSERT takes its settings inline: one engine call, and nothing to reset afterwards.
    const insert = INSERT_HEAD.exec(sql);
    if (insert && Object.keys(settings).length && !database) {
      const inline = Object.entries(settings)
        .map(([k, v]) => `${k} = ${literal(v)}`)
        .join(', ');
      sql = `${insert[1]} SETTINGS ${inline} ${sql.slice(insert[1]!.length)}`;
      settings = {};
    }
    const names = Object.keys(settings);
    const sets = names.map((k) => `SET ${k} = ${literal(settings[k]!)}`);
    if (database) sets.push(`USE ${quoteIdent(database)}`);
    try {
      if (sets.length) await this.session.queryAsync(sets.join('; '));
      return Object.keys(params).length ? await this.session.queryBindAsync(sql, params, { format }) : await this.session.queryAsync(sql, { format });
    } finally {
      const resets = names.map((k) => `SET ${k} = DEFAULT`);
      if (database) resets.push('USE default');
      if (resets.length) await this.session.queryAsync(resets.join('; ')).catch(() => undefined);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ping' || (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
      res.end('Ok.\n');
      return;
    }
    if (url.pathname !== '/') return this.fail(res, 404, { code: 0, type: 'UNKNOWN_ENDPOINT', message: `There is no handle ${url.pathname}. Use / or /ping` });
    // A browser sends Origin with every cross-site request; @clickhouse/client and Grafana's server-side plugin send none.
    const origin = req.headers.origin;
    if (origin !== undefined && !(this.o.allowedOrigins ?? []).includes(origin)) {
      return this.fail(res, 403, { code: 497, type: 'ACCESS_DENIED', message: `Origin ${origin} is not allowed: pages in a browser may not query this server (vcam clickhouse --allowed-origins)` });
    }
    // The bodies an HTML form can send without a script; a query goes as text/plain (or with no type).
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    if (/^(application\/x-www-form-urlencoded|multipart\/form-data)\b/.test(type)) {
      return this.fail(res, 415, { code: 0, type: 'UNSUPPORTED_MEDIA_TYPE', message: `Content-Type ${type.split(';')[0]} is refused (browser forms); send the query as text/plain (curl: -H 'Content-Type: text/plain')` });
    }
    if (url.searchParams.has('password'))
      return this.fail(res, 401, { code: 516, type: 'AUTHENTICATION_FAILED', message: 'Authentication failed: a password in the URL is refused (URLs end up in logs and histories); send it with HTTP basic auth or X-ClickHouse-Key' });
    if (!this.authorised(req, url)) return this.fail(res, 401, { code: 516, type: 'AUTHENTICATION_FAILED', message: 'Authentication failed: password is incorrect, or there is no user with such name' });
    // The engine runs one request at a time: past this many waiting, say so at once instead of queueing without end.
    if (this.waiting >= (this.o.maxQueuedRequests ?? 1_000)) {
      res.setHeader('retry-after', '1');
      return this.fail(res, 503, { code: 202, type: 'TOO_MANY_SIMULTANEOUS_QUERIES', message: `Too many simultaneous queries: ${this.waiting} are waiting for the engine; retry shortly` });
    }
    this.waiting++;
    try {
      await this.query(req, res, url);
    } finally {
      this.waiting--;
    }
  }

  private async query(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const limit = this.o.maxBodyBytes ?? 256 * 1024 * 1024;
    let body: Buffer;
    try {
      body = await readAll(req, limit);
      // The inflated body has the same bound as the raw one: a small gzip bomb cannot fill the memory.
      if (req.headers['content-encoding'] === 'gzip') body = await gunzipAsync(body, { maxOutputLength: limit });
    } catch (err) {
      const tooLarge = err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || /over \d+ bytes/.test((err as Error).message);
      if (tooLarge) return this.fail(res, 413, { code: 307, type: 'TOO_MANY_BYTES', message: `Request body over ${limit} bytes (after decompression); send smaller inserts` }, undefined, true);
      return this.fail(res, 400, { code: 354, type: 'CANNOT_DECOMPRESS', message: `Cannot read the request body: ${(err as Error).message}` });
    }
    const inUrl = url.searchParams.get('query');
    const sql = inUrl !== null ? (body.length ? `${inUrl}\n${body.toString('utf8')}` : inUrl) : body.toString('utf8');
    if (!sql.trim()) return this.fail(res, 400, { code: 62, type: 'SYNTAX_ERROR', message: 'Empty query' });
    // chDB takes a statement as text, data included: binary insert data would arrive garbled and fail deep in a decoder.
    const binary = INSERT_FORMAT.exec(sql.slice(0, 4096))?.[1];
    if (binary && BINARY_FORMATS.test(binary))
      return this.fail(res, 415, {
        code: 73,
        type: 'UNKNOWN_FORMAT',
        message: `The embedded ClickHouse takes insert data in text formats only (JSONEachRow, CSV, TSV, Values…), not ${binary}: send text, or read the file yourself (\`vcam geo load\` reads Parquet in its own process)`,
      });
    const second = secondStatementAt(sql);
    if (second !== undefined)
      return this.fail(res, 400, {
        code: 62,
        type: 'SYNTAX_ERROR',
        message: `Syntax error (Multi-statements are not allowed): failed at position ${second + 1} (end of query): ${JSON.stringify(sql.slice(second, second + 40))}; send one statement per request`,
      });

    const settings: Record<string, string> = {};
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) {
      if (k.startsWith('param_')) params[k.slice(6)] = v;
      else if (!PROTOCOL_PARAMS.has(k) && !HTTP_ONLY_SETTINGS.has(k)) {
        if (!SETTING_NAME.test(k)) return this.fail(res, 400, { code: 115, type: 'UNKNOWN_SETTING', message: `Unknown setting ${k}` });
        settings[k] = v;
      }
    }
    let refusal: Refusal | undefined;
    try {
      refusal = await this.refusal(sql, params, req.method === 'GET');
    } catch (err) {
      // What the engine could not parse would not have run either; its position is in the EXPLAIN.
      const e = asChError(err);
      return this.fail(res, statusFor(err), { ...e, message: e.message.replace(/position (\d+)/, (_, n: string) => `position ${Number(n) - EXPLAIN.length}`) });
    }
    if (refusal) {
      this.log.warn({ statement: statementHead(sql), refused: refusal.type }, 'statement refused');
      return this.fail(res, refusal.status, refusal);
    }
    const database = url.searchParams.get('database');
    const queryId = url.searchParams.get('query_id') || randomUUID();
    const format = url.searchParams.get('default_format') ?? 'TabSeparated';
    let result;
    const queued = performance.now();
    let began = 0;
    try {
      result = await this.serialised(() => ((began = performance.now()), this.run(sql, settings, params, format, database && database !== 'default' ? database : undefined)));
      // One statement at a time: an operator chasing latency needs the wait apart from the work.
      if (this.log.isLevelEnabled('debug')) this.log.debug({ statement: statementHead(sql), waitedMs: Math.round(began - queued), ranMs: Math.round(performance.now() - began), bodyBytes: body.length }, 'query');
    } catch (err) {
      return this.fail(res, statusFor(err), asChError(err), queryId);
    }
    const bytes = Buffer.from(result.bytes());
    const isInsert = /^\s*INSERT\b/i.test(sql);
    const summary = {
      read_rows: String(isInsert ? 0 : result.rowsRead),
      read_bytes: String(isInsert ? 0 : result.bytesRead),
      written_rows: String(isInsert ? result.rowsRead : 0),
      written_bytes: String(isInsert ? result.bytesRead : 0),
      total_rows_to_read: '0',
      result_rows: String(isInsert ? result.rowsRead : 0),
      result_bytes: String(bytes.length),
      elapsed_ns: String(Math.round(result.elapsed * 1e9)),
    };
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=UTF-8',
      'x-clickhouse-query-id': queryId,
      'x-clickhouse-summary': JSON.stringify(summary),
      'x-clickhouse-timezone': 'UTC',
      'x-clickhouse-server-display-name': 'vcam-clickhouse',
      'x-clickhouse-format': format,
    };
    const gzip = url.searchParams.get('enable_http_compression') === '1' && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const out = gzip ? gzipSync(bytes) : bytes;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = String(out.length);
    res.writeHead(200, headers);
    res.end(out);
  }

  /**
   * The allow-list (allowlist.ts) applied to the engine's parse of the statement, `EXPLAIN AST`
   * with the request's parameters bound; an INSERT's data is not part of it. Verdicts are kept
   * per statement text (and per value of any Identifier parameter, the one kind that can name
   * a different table), so the processor's repeated statements are parsed once.
   */
  private async refusal(sql: string, params: Record<string, string>, readOnly: boolean): Promise<Refusal | undefined> {
    const statement = sql.slice(0, insertDataStart(sql) ?? sql.length);
    const identifiers = [...statement.matchAll(/\{\s*(\w+)\s*:\s*Identifier\s*\}/g)].map((m) => params[m[1]!] ?? '');
    const key = identifiers.length ? `${statement}\0${identifiers.join('\0')}` : statement;
    let verdict = this.verdicts.get(key);
    if (!verdict) {
      const explain = `${EXPLAIN}${statement}`;
      const ast = await this.serialised(() => (Object.keys(params).length ? this.session.queryBindAsync(explain, params, { format: 'TSVRaw' }) : this.session.queryAsync(explain, { format: 'TSVRaw' })));
      const text = Buffer.from(ast.bytes()).toString('utf8');
      verdict = { write: judge(text, false), read: judge(text, true) };
      if (this.verdicts.size >= 2_000) this.verdicts.clear();
      // Ad-hoc statements with their literals inline (INSERT … VALUES) are not worth keeping.
      if (key.length <= 8_192) this.verdicts.set(key, verdict);
    }
    return readOnly ? verdict.read : verdict.write;
  }

  private authorised(req: IncomingMessage, url: URL): boolean {
    if (!this.o.user) return true;
    let user = (req.headers['x-clickhouse-user'] as string | undefined) ?? url.searchParams.get('user') ?? undefined;
    let password = (req.headers['x-clickhouse-key'] as string | undefined) ?? '';
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      user = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
    // Both compared, in constant time, so timing tells nothing of either.
    const userOk = sameSecret(user ?? '', this.o.user);
    const passwordOk = sameSecret(password, this.o.password ?? '');
    return userOk && passwordOk;
  }

  private fail(res: ServerResponse, status: number, e: ChError, queryId?: string, close = false): void {
    const text = `Code: ${e.code}. DB::Exception: ${e.message}. (${e.type}) (version ${VERSION})\n`;
    res.writeHead(status, {
      'content-type': 'text/plain; charset=UTF-8',
      'x-clickhouse-exception-code': String(e.code),
      ...(queryId ? { 'x-clickhouse-query-id': queryId } : {}),
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(text);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeIdleConnections();
    await closed;
    await this.queue;
    this.session.close();
  }
}

/** Names of the error codes chDB reports without a type; the rest carry it in the message. */
const ERROR_TYPES: Record<number, string> = {
  27: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  36: 'BAD_ARGUMENTS',
  43: 'ILLEGAL_TYPE_OF_ARGUMENT',
  46: 'UNKNOWN_FUNCTION',
  47: 'UNKNOWN_IDENTIFIER',
  53: 'TYPE_MISMATCH',
  57: 'TABLE_ALREADY_EXISTS',
  60: 'UNKNOWN_TABLE',
  62: 'SYNTAX_ERROR',
  81: 'UNKNOWN_DATABASE',
  115: 'UNKNOWN_SETTING',
  117: 'INCORRECT_DATA',
  159: 'TIMEOUT_EXCEEDED',
  241: 'MEMORY_LIMIT_EXCEEDED',
};

function asChError(err: unknown): ChError {
  const text = String((err as Error)?.message ?? err).trim();
  const m = /^Code: (\d+)\. DB::Exception: (.*)$/s.exec(text);
  const code = Number(m?.[1] ?? (err as { clickhouseCode?: number }).clickhouseCode ?? 1001);
  let message = m?.[2] ?? text;
  const typed = /^(.*?)\.? \(([A-Z0-9_]*[A-Z]{3}[A-Z0-9_]*)\)\s*$/s.exec(message);
  if (typed) return { code, message: typed[1]!, type: typed[2]! };
  message = message.replace(/\.? \(\d+\)\s*$/, '');
  return { code, message, type: ERROR_TYPES[code] ?? 'STD_EXCEPTION' };
}

/** The HTTP status ClickHouse uses for the common error types; 500 otherwise. */
function statusFor(err: unknown): number {
  const { type } = asChError(err);
  if (type === 'UNKNOWN_TABLE' || type === 'UNKNOWN_DATABASE') return 404;
  if (/SYNTAX_ERROR|UNKNOWN_IDENTIFIER|TYPE_MISMATCH|CANNOT_PARSE|ILLEGAL_TYPE|UNKNOWN_SETTING|BAD_ARGUMENTS|UNKNOWN_FUNCTION|INCORRECT_DATA|CANNOT_READ|TOO_LARGE/.test(type)) return 400;
  return 500;
}

/** ClickHouse's binary input formats. */
const BINARY_FORMATS = /^(Parquet|Arrow|ArrowStream|ORC|Avro|Native|RowBinary\w*|Protobuf\w*|CapnProto|MsgPack|BSONEachRow|Npy)$/i;
/** The format of an INSERT's data: its first FORMAT clause (the data after it may say anything). */
const INSERT_FORMAT = /^\s*INSERT\b[^;]*?\bFORMAT\s+(\w+)/i;

/** `INSERT INTO db.table [(columns)]` up to the FORMAT clause. */
const INSERT_HEAD = /^(\s*INSERT\s+INTO\s+[\w.`"]+(?:\s*\([^)]*\))?)\s+FORMAT\s/i;

function literal(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function quoteIdent(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

function readAll(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.destroy();
        reject(new Error(`request body over ${limit} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
