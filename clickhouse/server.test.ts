/** @clickhouse/client against `vcam clickhouse` over HTTP: the real client, the real engine (chDB). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { createClient, ClickHouseError, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../test/helpers/brokers.js';
import { vcam } from '../test/helpers/processes.js';
import { ClickHouseServer } from './server.js';

let server: ClickHouseServer;
let client: ClickHouseClient;
beforeAll(async () => {
  server = new ClickHouseServer({ dataDir: mkdtempSync(join(tmpdir(), 'vcam-ch-')), port: 0, user: 'vcam', password: 's3cret' });
  await server.start();
  client = createClient({ url: `http://127.0.0.1:${server.port}`, username: 'vcam', password: 's3cret' });
});
afterAll(async () => {
  await client?.close();
  await server?.close();
});

describe('vcam clickhouse over HTTP', () => {
  it('answers ping and runs DDL', async () => {
    expect((await client.ping()).success).toBe(true);
    await client.command({ query: 'CREATE DATABASE IF NOT EXISTS t1' });
    await client.command({ query: 'CREATE TABLE IF NOT EXISTS t1.ev (id String, geo UInt32, n UInt64, at DateTime64(3)) ENGINE = MergeTree ORDER BY id' });
    const tables = await (await client.query({ query: "SELECT name FROM system.tables WHERE database = 't1'", format: 'JSONEachRow' })).json<{ name: string }>();
    expect(tables).toEqual([{ name: 'ev' }]);
  });

  it('inserts JSON rows and reads them back with typed parameters, in the requested database', async () => {
    await client.insert({
      table: 't1.ev',
      values: [
        { id: 'a', geo: 1, n: 5, at: '2026-11-25 10:00:00.123' },
        { id: "b'q", geo: 2, n: 7, at: '2026-11-25 10:00:01.000' },
      ],
      format: 'JSONEachRow',
    });
    const rows = await (
      await client.query({
        query: 'SELECT id, n FROM t1.ev WHERE geo IN {geos:Array(UInt32)} AND id != {skip:String} ORDER BY id',
        query_params: { geos: [1, 2], skip: 'zzz' },
        format: 'JSONEachRow',
        clickhouse_settings: { max_threads: 1 },
      })
    ).json<{ id: string; n: number }>();
    expect(rows).toEqual([
      { id: 'a', n: 5 },
      { id: "b'q", n: 7 },
    ]);
    const byDb = createClient({ url: `http://127.0.0.1:${server.port}`, username: 'vcam', password: 's3cret', database: 't1' });
    expect(await (await byDb.query({ query: 'SELECT count() AS c FROM ev', format: 'JSONEachRow' })).json()).toEqual([{ c: 2 }]);
    await byDb.close();
  });

  it('applies settings to one request only (a dedup token must not leak into the next insert)', async () => {
    await client.command({ query: 'CREATE TABLE t1.d (k String) ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 100' });
    await client.insert({ table: 't1.d', values: [{ k: 'x' }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-1' } });
    await client.insert({ table: 't1.d', values: [{ k: 'y' }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-1' } });
    await client.insert({ table: 't1.d', values: [{ k: 'z' }], format: 'JSONEachRow' });
    const rows = await (await client.query({ query: 'SELECT k FROM t1.d ORDER BY k', format: 'JSONEachRow' })).json();
    expect(rows).toEqual([{ k: 'x' }, { k: 'z' }]);
  });

  it('returns errors as ClickHouse does: typed, with code and message', async () => {
    const err = await client.query({ query: 'SELECT * FROM t1.nope' }).catch((e) => e);
    expect(err).toBeInstanceOf(ClickHouseError);
    expect(err).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    const syntax = await client.command({ query: 'SELEC 1' }).catch((e) => e);
    expect(syntax).toMatchObject({ code: '62', type: 'SYNTAX_ERROR' });
    const badAuth = createClient({ url: `http://127.0.0.1:${server.port}`, username: 'vcam', password: 'wrong' });
    expect(await badAuth.query({ query: 'SELECT 1' }).catch((e) => e)).toMatchObject({ type: 'AUTHENTICATION_FAILED' });
    await badAuth.close();
    // The server keeps serving after errors.
    expect(await (await client.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' })).json()).toEqual([{ one: 1 }]);
  });

  it('serves concurrent requests without mixing their settings or results', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.query({ query: "SELECT {i:UInt32} AS i, getSetting('max_threads') AS t", query_params: { i }, clickhouse_settings: { max_threads: i + 1 }, format: 'JSONEachRow' }).then((r) => r.json<{ i: number; t: number }>()),
      ),
    );
    results.forEach((rows, i) => expect(rows).toEqual([{ i, t: i + 1 }]));
  });

  it('refuses a gzip bomb (300 MB of zeros, inflated past the body limit) with 413 and keeps serving', async () => {
    const gz = createGzip({ level: 9 });
    const parts: Buffer[] = [];
    gz.on('data', (c: Buffer) => parts.push(c));
    const zeros = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 300; i++) if (!gz.write(zeros)) await new Promise((r) => gz.once('drain', r));
    await new Promise((r) => gz.end(r));
    const bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const r = await fetch(`http://127.0.0.1:${server.port}/?query=${encodeURIComponent('INSERT INTO t1.d FORMAT TSV')}`, { method: 'POST', body: bomb, headers: { 'content-encoding': 'gzip', authorization: BASIC } });
    expect(r.status).toBe(413);
    expect(await r.text()).toMatch(/Code: 307\. DB::Exception: Request body over 268435456 bytes \(after decompression\)/);
    expect(await (await client.query({ query: 'SELECT 1 AS one', format: 'JSONEachRow' })).json()).toEqual([{ one: 1 }]);
  });

  it('runs one statement per request: a second one is refused as ClickHouse refuses it, and does not run', async () => {
    await client.command({ query: 'CREATE DATABASE IF NOT EXISTS t1' });
    await client.command({ query: 'CREATE TABLE IF NOT EXISTS t1.keep (k String) ENGINE = MergeTree ORDER BY k' });
    for (const [method, query] of [
      ['GET', 'SELECT 1; DROP TABLE t1.keep'],
      ['POST', 'SELECT 1;\nDROP TABLE t1.keep'],
      ['POST', "INSERT INTO t1.keep VALUES ('x'); DROP TABLE t1.keep"],
    ] as const) {
      const r =
        method === 'GET'
          ? await fetch(`http://127.0.0.1:${server.port}/?query=${encodeURIComponent(query)}`, { headers: { authorization: BASIC } })
          : await fetch(`http://127.0.0.1:${server.port}/`, { method, body: query, headers: { authorization: BASIC } });
      expect(r.status, query).toBe(400);
      expect(r.headers.get('x-clickhouse-exception-code')).toBe('62');
      expect(await r.text()).toMatch(/Multi-statements are not allowed/);
    }
    const left = await (await client.query({ query: "SELECT count() AS n FROM system.tables WHERE database = 't1' AND name = 'keep'", format: 'JSONEachRow' })).json<{ n: number }>();
    expect(left).toEqual([{ n: 1 }]);
    expect(await (await client.query({ query: 'SELECT count() AS n FROM t1.keep', format: 'JSONEachRow' })).json()).toEqual([{ n: 0 }]);
  });

  it('refuses binary insert data (Parquet, Native…) with 415 and a reason, instead of a garbled parse', async () => {
    const parquet = Buffer.concat([Buffer.from('PAR1'), Buffer.from([0, 0x80, 0xff, 0xfe, 1, 2, 3]), Buffer.from('PAR1')]);
    const r = await fetch(`http://127.0.0.1:${server.port}/?query=${encodeURIComponent('INSERT INTO t1.ev FORMAT Parquet')}`, {
      method: 'POST',
      body: parquet,
      headers: { authorization: `Basic ${Buffer.from('vcam:s3cret').toString('base64')}` },
    });
    expect(r.status).toBe(415);
    expect(await r.text()).toMatch(/^Code: 73\. DB::Exception: The embedded ClickHouse takes insert data in text formats only .*not Parquet/);
    // Text data that mentions a binary format is data, not a format.
    await client.insert({ table: 't1.ev', values: [{ id: 'FORMAT Native', geo: 3, n: 1, at: '2026-11-25 10:00:02.000' }], format: 'JSONEachRow' });
    expect(await (await client.query({ query: "SELECT geo FROM t1.ev WHERE id = 'FORMAT Native'", format: 'JSONEachRow' })).json()).toEqual([{ geo: 3 }]);
  });

  it('refuses a password in the URL, even the right one', async () => {
    const r = await fetch(`http://127.0.0.1:${server.port}/?user=vcam&password=s3cret&query=SELECT%201`);
    expect(r.status).toBe(401);
    expect(await r.text()).toMatch(/a password in the URL is refused/);
  });

  it('answers 503 with Retry-After past its queue bound instead of queueing without end, then serves again', async () => {
    // One chDB data directory per process: this server is a `vcam clickhouse` process of its own.
    const port = await freePort();
    const small = vcam(['clickhouse', '--data-dir', mkdtempSync(join(tmpdir(), 'vcam-ch-q-')), '--port', String(port), '--max-queued-requests', '2', '--no-migrate', '--log-level', 'warn', '--user', 'vcam'], {
      VCAM_CLICKHOUSE_PASSWORD: 's3cret',
    });
    try {
      await waitFor(
        () =>
          fetch(`http://127.0.0.1:${port}/ping`).then(
            (r) => r.ok,
            () => false,
          ),
        30_000,
        'vcam clickhouse',
      );
      const url = `http://127.0.0.1:${port}/?query=${encodeURIComponent('SELECT sleep(0.5)')}`;
      const answers = await Promise.all(Array.from({ length: 8 }, () => fetch(url, { headers: { authorization: BASIC } }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), text: await r.text() }))));
      expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 503, 503, 503, 503, 503, 503]);
      for (const a of answers.filter((x) => x.status === 503)) {
        expect(a.retryAfter).toBe('1');
        expect(a.text).toMatch(/TOO_MANY_SIMULTANEOUS_QUERIES/);
      }
      expect((await fetch(url, { headers: { authorization: BASIC } })).status).toBe(200);
    } finally {
      small.child.kill('SIGTERM');
      await small.exited;
    }
  });
});

const BASIC = `Basic ${Buffer.from('vcam:s3cret').toString('base64')}`;
