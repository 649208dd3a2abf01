/**
 * What a local process or a web page in the operator's browser could do to `vcam clickhouse`
 * (issue 17), tried against the real command with its defaults: every attack answered with the
 * status and message ClickHouse would give, nothing written or read on the host, the schema intact.
 */
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from './helpers/brokers.js';
import { vcam, type Proc } from './helpers/processes.js';

let dataDir: string;
let port: number;
let proc: Proc;
let password: string;
let client: ClickHouseClient;
/** Where an attack would leave a file if it got through. */
const canaries = mkdtempSync(join(tmpdir(), 'vcam-canary-'));

async function start(): Promise<void> {
  proc = vcam(['clickhouse', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn']);
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`vcam clickhouse exited: ${proc.stderr()}`);
      if (!existsSync(join(dataDir, 'clickhouse.secret'))) return false;
      return (await fetch(`http://127.0.0.1:${port}/?query=SELECT%201`, { headers: { authorization: basic() } }).catch(() => undefined))?.status === 200;
    },
    60_000,
    'vcam clickhouse serving with its password',
  );
}

async function stop(): Promise<void> {
  proc.child.kill('SIGTERM');
  await proc.exited;
}

const basic = (user = 'default', pw = password ?? readSecret()) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
const readSecret = () => readFileSync(join(dataDir, 'clickhouse.secret'), 'utf8').trim();

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'vcam-ch-sec-'));
  port = await freePort();
  await start();
  password = readSecret();
  client = createClient({ url: `http://127.0.0.1:${port}`, password });
}, 90_000);
afterAll(async () => {
  await client?.close();
  if (proc) await stop();
});

/** POSTs one statement as a local process would, with the password unless told otherwise. */
async function post(sql: string, headers: Record<string, string> = {}): Promise<{ status: number; code: string | null; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: sql, headers: { authorization: basic(), 'content-type': 'text/plain', ...headers } });
  return { status: r.status, code: r.headers.get('x-clickhouse-exception-code'), text: await r.text() };
}

async function get(sql: string): Promise<{ status: number; code: string | null; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/?query=${encodeURIComponent(sql)}`, { headers: { authorization: basic() } });
  return { status: r.status, code: r.headers.get('x-clickhouse-exception-code'), text: await r.text() };
}

const geoExists = async () => (await (await client.query({ query: "SELECT count() AS n FROM system.tables WHERE database = 'vcam' AND name = 'geo'", format: 'JSONEachRow' })).json())[0];

describe('vcam clickhouse, as started with no security options', () => {
  it('made a password at first start, in <data-dir>/clickhouse.secret readable by its owner only', () => {
    expect(password).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(statSync(join(dataDir, 'clickhouse.secret')).mode & 0o777).toBe(0o600);
  });

  it('answers /ping to anyone and nothing else without the password (basic auth or the X-ClickHouse headers)', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/ping`)).status).toBe(200);
    const anonymous = await post('SELECT 1', { authorization: '' });
    expect(anonymous).toMatchObject({ status: 401, code: '516' });
    expect(anonymous.text).toMatch(/Authentication failed/);
    expect(await post('SELECT 1', { authorization: basic('default', 'guess') })).toMatchObject({ status: 401, code: '516' });
    expect(await post('SELECT 1', { authorization: '', 'x-clickhouse-user': 'default', 'x-clickhouse-key': password })).toMatchObject({ status: 200, text: '1\n' });
    expect(await post('SELECT 1')).toMatchObject({ status: 200, text: '1\n' });
  });

  it("refuses a web page's request: a foreign Origin (403), browser form bodies (415)", async () => {
    const page = await post('SELECT 1', { origin: 'http://evil.example' });
    expect(page).toMatchObject({ status: 403 });
    expect(page.text).toMatch(/Origin http:\/\/evil\.example is not allowed/);
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const form = await post('SELECT 1', { 'content-type': type });
      expect(form.status, type).toBe(415);
      expect(form.text).toMatch(/text\/plain/);
    }
  });

  it('reads no host file: file(), FROM INFILE, a File table, a Filesystem database, a dictionary', async () => {
    const attempts = [
      "SELECT * FROM file('/etc/hostname', 'LineAsString')",
      "SELECT file('/etc/hostname')",
      "SELECT * FROM (SELECT 1) WHERE 1 IN (SELECT 1 FROM file('/etc/hostname', 'LineAsString'))",
      "DESCRIBE file('/etc/hostname', 'LineAsString')",
      "CREATE TABLE default.leak ENGINE = Memory AS SELECT * FROM file('/etc/hostname', 'LineAsString')",
      "CREATE TABLE default.leak AS file('/etc/hostname', 'LineAsString')",
      "CREATE TABLE default.leak (line String) ENGINE = File(LineAsString, '/etc/hostname')",
      "CREATE DATABASE leak ENGINE = Filesystem('/etc')",
      "CREATE DICTIONARY default.leak (k String, v String) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
    ];
    for (const sql of attempts) {
      const r = await post(sql);
      expect(r, sql).toMatchObject({ status: 403, code: '497' });
      expect(r.text, sql).toMatch(/ACCESS_DENIED/);
    }
    const infile = await post("INSERT INTO vcam.geo FROM INFILE '/etc/hostname' FORMAT LineAsString");
    expect(infile).toMatchObject({ status: 403, code: '497' });
    expect(infile.text).toMatch(/INTO OUTFILE and FROM INFILE are not allowed/);
    expect(await post("SELECT count() FROM system.tables WHERE name = 'leak'")).toMatchObject({ status: 200, text: '0\n' });
  });

  it('writes no host file: INSERT INTO FUNCTION file(), INTO OUTFILE; the canary is never created', async () => {
    const canary = join(canaries, 'written');
    const write = await post(`INSERT INTO FUNCTION file('${canary}', 'LineAsString') SELECT 'x'`);
    expect(write).toMatchObject({ status: 403, code: '497' });
    expect(write.text).toMatch(/INSERT INTO FUNCTION file is not allowed/);
    const outfile = await post(`SELECT 'x' INTO OUTFILE '${canary}'`);
    expect(outfile).toMatchObject({ status: 403, code: '497' });
    expect(existsSync(canary)).toBe(false);
  });

  it('reaches no other service: url() to a local server is refused and the server is never called', async () => {
    let calls = 0;
    const other = createServer((_req, res) => void (calls++, res.end('secret\n')));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const at = `http://127.0.0.1:${(other.address() as AddressInfo).port}/healthz`;
    try {
      for (const sql of [`SELECT * FROM url('${at}', 'LineAsString')`, `SELECT * FROM remote('127.0.0.1:${port}', system.one)`, `SELECT * FROM s3('${at}', 'LineAsString')`]) {
        const r = await post(sql);
        expect(r, sql).toMatchObject({ status: 403, code: '497' });
        expect(r.text, sql).toMatch(/Table function \w+ is not allowed; allowed: numbers/);
      }
      expect(calls).toBe(0);
    } finally {
      other.close();
    }
  });

  it('runs one statement per request and GETs read-only, judged on the parsed statement: vcam.geo survives', async () => {
    expect(await get('SELECT 1; DROP TABLE vcam.geo')).toMatchObject({ status: 400, code: '62' });
    expect(await get('/* a comment first */ DROP TABLE vcam.geo')).toMatchObject({ status: 400, code: '164' });
    expect(await get("INSERT INTO vcam.geo (geoId, geoName) VALUES (1, 'x')")).toMatchObject({ status: 400, code: '164' });
    // What a first-word check refused and ClickHouse runs.
    expect(await get('(SELECT 1)')).toMatchObject({ status: 200, text: '1\n' });
    expect(await geoExists()).toEqual({ n: 1 });
  });

  it('refuses statements that act on the server or outlive the request: SYSTEM, SET, USE, ATTACH, KILL, BACKUP, users, functions', async () => {
    for (const sql of [
      'SYSTEM SHUTDOWN',
      'SET max_threads = 1',
      'USE system',
      "ATTACH TABLE default.a FROM '/tmp' (x Int8) ENGINE = MergeTree ORDER BY x",
      'DETACH TABLE vcam.geo',
      'KILL QUERY WHERE 1',
      "BACKUP TABLE vcam.geo TO File('/tmp/b')",
      'CREATE USER mallory',
      'CREATE FUNCTION f AS x -> x + 1',
    ]) {
      const r = await post(sql);
      expect(r, sql).toMatchObject({ status: 403, code: '497' });
    }
    expect(await geoExists()).toEqual({ n: 1 });
  });

  it('keeps its password across a restart', async () => {
    await stop();
    await start();
    expect(readSecret()).toBe(password);
    expect(await post('SELECT 1')).toMatchObject({ status: 200, text: '1\n' });
  }, 90_000);
});
