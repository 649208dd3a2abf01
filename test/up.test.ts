/** `vcam up` (npm start): the whole single-node product from one command, fed one request; `--kafka`, the Kafka-mode topology. */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KAFKA_VERSION } from '../kafka/index.js';
import { APP_ID } from '../archive/index.js';
import { portOpen } from '../common/http.js';
import { freePort, waitFor } from './helpers/brokers.js';
import { readDeltaTable } from './helpers/delta.js';
import { vcam, waitHealthy } from './helpers/processes.js';

describe('vcam up', () => {
  it('--no-sim: runs ClickHouse, bridge, processor, archiver and agent; posted events show in the per-geo summary and land in the archive; Ctrl-C exits 0', async () => {
    const [http, mqtt, ch, archivePort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-up-'));
    const up = vcam([
      'up',
      '--no-sim',
      '--data-dir',
      dataDir,
      '--http-port',
      String(http),
      '--mqtt-port',
      String(mqtt),
      '--clickhouse-port',
      String(ch),
      '--summary-every',
      '500ms',
      '--archive-every',
      '1s',
      '--archive-http-port',
      String(archivePort),
    ]);
    let out = '';
    up.child.stdout!.on('data', (d) => (out += d));
    await waitHealthy(http, up, 60_000);
    const now = Date.now();
    const body = [1, 2, 3].map((i) => ({ deviceId: `cam-${i}`, geoId: 42, ts: now - i, type: 'person' }));
    expect((await fetch(`http://127.0.0.1:${http}/v1/events`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })).status).toBe(202);
    await waitFor(() => /geo 42 .* 1m +3 /.test(out), 30_000, 'geo 42 with 3 events in the summary');
    expect(out).toContain(`data in ${dataDir}`);
    // The embedded ClickHouse wants the password it made, and says where it is.
    const secretFile = join(dataDir, 'clickhouse', 'clickhouse.secret');
    expect(out).toContain(`(user default, password in ${secretFile})`);
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    expect((await fetch(`http://127.0.0.1:${ch}/?query=SELECT%201`)).status).toBe(401);
    const basic = `Basic ${Buffer.from(`default:${readFileSync(secretFile, 'utf8').trim()}`).toString('base64')}`;
    expect(await (await fetch(`http://127.0.0.1:${ch}/?query=SELECT%201`, { headers: { authorization: basic } })).text()).toBe('1\n');
    // The archive, in the data directory by default, with no S3: the three events, as an independent reader sees them.
    expect(out).toContain(`archive           file://${join(dataDir, 'archive')} (Delta Lake, every 1 s`);
    await waitFor(async () => /^vcam_archive_rows_total\{[^}]*\} 3$/m.test(await (await fetch(`http://127.0.0.1:${archivePort}/metrics`)).text()), 30_000, 'the three events archived');
    expect((await readDeltaTable(`file://${join(dataDir, 'archive')}`, APP_ID)).rowsPerPartition).toEqual({ [new Date(now).toISOString().slice(0, 10)]: 3 });
    up.child.kill('SIGINT');
    expect(await up.exited).toBe(0);
  });

  it('by default the simulator feeds it: named geos with growing counts within 60 s, data kept in the directory it names', async () => {
    const [http, mqtt, ch] = [await freePort(), await freePort(), await freePort()];
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-up-sim-'));
    const started = Date.now();
    const up = vcam(['up', '--data-dir', dataDir, '--http-port', String(http), '--mqtt-port', String(mqtt), '--clickhouse-port', String(ch), '--summary-every', '1s', '--archive-http-port', String(await freePort())]);
    let out = '';
    up.child.stdout!.on('data', (d) => (out += d));
    // The busiest simulated geo (id 100) with its name from the simulator's CSV, counting.
    const line = /geo 100 +(\S[^\n]*?) +1m +(\d+) /g;
    const counts = () => [...out.matchAll(line)].map((m) => ({ name: m[1]!, n: Number(m[2]) }));
    await waitFor(() => counts().some((c) => c.n > 0), 60_000, 'geo 100 counting in the summary');
    expect(Date.now() - started).toBeLessThan(60_000);
    const first = counts().at(-1)!;
    expect(first.name).not.toBe('(unknown)');
    await waitFor(() => counts().at(-1)!.n > first.n, 20_000, 'the count of geo 100 growing');
    expect(out).toContain(`data in ${dataDir}`);
    expect(out).toMatch(/simulator +200 events\/s/);
    up.child.kill('SIGINT');
    expect(await up.exited).toBe(0);
  });

  it('--kafka: a local Apache Kafka broker, the bridge in Kafka mode and `vcam processor` as its own process; posted events counted; Ctrl-C stops every process', async () => {
    const [http, mqtt, ch, kafka, proc] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-up-kafka-'));
    const up = vcam([
      'up',
      '--kafka',
      '--no-sim',
      '--data-dir',
      dataDir,
      '--http-port',
      String(http),
      '--mqtt-port',
      String(mqtt),
      '--clickhouse-port',
      String(ch),
      '--kafka-port',
      String(kafka),
      '--processor-http-port',
      String(proc),
      '--archive-http-port',
      String(await freePort()),
      '--summary-every',
      '500ms',
    ]);
    let out = '';
    up.child.stdout!.on('data', (d) => (out += d));
    await waitHealthy(http, up, 120_000);
    expect(out).toMatch(new RegExp(`Kafka +127\\.0\\.0\\.1:${kafka} \\(Apache Kafka ${KAFKA_VERSION}, local`));
    const health = (await (await fetch(`http://127.0.0.1:${proc}/healthz`)).json()) as { ok: boolean; partitions: number[] };
    expect(health.ok).toBe(true);
    expect(health.partitions).toEqual(Array.from({ length: 16 }, (_, i) => i));
    const now = Date.now();
    const body = [1, 2, 3, 4].map((i) => ({ deviceId: `cam-${i}`, geoId: 43, ts: now - i, type: 'person' }));
    expect((await fetch(`http://127.0.0.1:${http}/v1/events`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })).status).toBe(202);
    await waitFor(() => /geo 43 .* 1m +4 /.test(out), 60_000, 'geo 43 with 4 events in the summary');
    up.child.kill('SIGINT');
    expect(await up.exited).toBe(0);
    // The broker and the processor went with it.
    for (const port of [kafka, proc]) await waitFor(async () => !(await portOpen(port)), 30_000, `port ${port} closed`);
  }, 240_000);
});
