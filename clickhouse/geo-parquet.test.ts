/**
 * `vcam geo load` of Parquet files and `vcam geo export`, run as the real command (a child
 * process) against the embedded ClickHouse. The Parquet files are written by ClickHouse itself
 * (`SELECT … FROM values(…) FORMAT Parquet`), so they are what other tools produce, not ours.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helpText } from '../common/config.js';
import type { LocalS3 } from '../s3/index.js';
import { startClickHouse, type TestClickHouse } from '../test/helpers/clickhouse.js';
import { VCAM_BIN } from '../test/helpers/processes.js';
import { startTestS3 } from '../test/helpers/s3.js';
import { geoCommand } from './cli.js';

let ch: TestClickHouse;
let dir: string;
beforeAll(async () => {
  ch = await startClickHouse();
  dir = mkdtempSync(join(tmpdir(), 'vcam-geo-pq-'));
});
afterAll(async () => {
  await ch?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function geo(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [VCAM_BIN, 'geo', ...args, ...ch.args], { env: { ...process.env, VCAM_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** A Parquet file as ClickHouse writes one: `structure` and literal rows, through the server's HTTP interface. */
async function parquet(name: string, structure: string, rows: string): Promise<string> {
  const { stream } = await ch.client.exec({ query: `SELECT * FROM values('${structure}', ${rows}) FORMAT Parquet` });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat(chunks));
  return path;
}

const file = (name: string, text: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** What processors use: the latest load (processor/geo.ts reads it the same way). */
const current = () => ch.query<{ geo_id: number; geo_name: string; region: string }>('SELECT geo_id, geo_name, region FROM vcam.geo FINAL WHERE loaded_at = (SELECT max(loaded_at) FROM vcam.geo) ORDER BY geo_id');
/** Everything ever loaded: a refused file must not add a single row. */
const everything = () => ch.query<{ n: string; latest: string }>('SELECT toString(count()) AS n, toString(max(loaded_at)) AS latest FROM vcam.geo');

const A_CSV = 'geoId,geoName,region\n1,Old Town,north\n2,"Quay ""7"", East",south\n3,Zürich 𝄞,\n4294967295,Edge,west\n';
const A = [
  { geo_id: 1, geo_name: 'Old Town', region: 'north' },
  { geo_id: 2, geo_name: 'Quay "7", East', region: 'south' },
  { geo_id: 3, geo_name: 'Zürich 𝄞', region: '' },
  { geo_id: 4294967295, geo_name: 'Edge', region: 'west' },
];
const B_CSV = 'geoId,geoName,region\n9,Elsewhere,east\n';
const B = [{ geo_id: 9, geo_name: 'Elsewhere', region: 'east' }];

describe('vcam geo: Parquet and export', () => {
  it('export refuses when nothing has been loaded', async () => {
    expect(await geo(['export', '--format', 'csv'])).toEqual({ code: 2, stdout: '', stderr: 'error: nothing to export: no geo table has been loaded (vcam geo load FILE)\n' });
  });

  it('a Parquet geo file loads, and the table is its rows', async () => {
    const path = await parquet('a.parquet', 'geoId UInt32, geoName String, region String', `(1, 'Old Town', 'north'), (2, 'Quay "7", East', 'south'), (3, 'Zürich 𝄞', ''), (4294967295, '  Edge ', 'west')`);
    expect(await geo(['load', path])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 4, file: path, format: 'parquet' })}\n`, stderr: '' });
    expect(await current()).toEqual(A);
  });

  it('is told from CSV by its first bytes whatever its name, and takes the columns in either spelling, any case, ids as text', async () => {
    const path = await parquet('geo.dat', 'GEO_ID String, Geo_Name String, REGION String', `('0012', 'Twelve', 'r'), ('13', 'Thirteen', 'r')`);
    expect(await geo(['load', path])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 2, file: path, format: 'parquet' })}\n`, stderr: '' });
    expect(await current()).toEqual([
      { geo_id: 12, geo_name: 'Twelve', region: 'r' },
      { geo_id: 13, geo_name: 'Thirteen', region: 'r' },
    ]);
  });

  it('a Parquet file with bad rows is refused whole, each bad row named by its number', async () => {
    expect((await geo(['load', file('a.csv', A_CSV)])).code).toBe(0);
    const before = await everything();
    const path = await parquet(
      'bad.parquet',
      'geoId Nullable(Int64), geoName Nullable(String), region Nullable(String)',
      `(1, 'Good', 'n'), (2, 'Fine', 's'), (3, '', 'e'), (-1, 'Minus', 'w'), (5, NULL, 'x'), (NULL, 'No id', 'y'), (2, 'Again', 'z'), (6, 'Line\\nbreak', 'q'), (4294967296, 'Too big', 'q'), (7, 'Null region', NULL)`,
    );
    expect(await geo(['load', path])).toEqual({
      code: 2,
      stdout: '',
      stderr: [
        `error: ${path}: 7 bad row(s), nothing loaded:`,
        '  row 3: geoName is empty',
        '  row 4: geoId "-1" is not an unsigned 32-bit integer',
        '  row 5: geoName is empty',
        '  row 6: geoId is null',
        '  row 7: geoId 2 appears twice',
        '  row 8: geoName contains a line break',
        '  row 9: geoId "4294967296" is not an unsigned 32-bit integer',
        '',
      ].join('\n'),
    });
    expect(await everything()).toEqual(before);
    expect(await current()).toEqual(A);
  });

  it('a Parquet file missing a column, with another one, or of the wrong type is refused naming them', async () => {
    const before = await everything();
    const missing = await parquet('missing.parquet', 'geoId UInt32, geoName String', `(1, 'One')`);
    expect(await geo(['load', missing])).toEqual({ code: 2, stdout: '', stderr: `error: ${missing}: the Parquet columns must be geoId, geoName, region, nothing loaded:\n  column region is missing\n` });
    const wrong = await parquet('wrong.parquet', 'geoId Float64, geo_name String, geoName String, region UInt8, extra String', `(1.5, 'a', 'b', 1, 'x')`);
    expect(await geo(['load', wrong])).toEqual({
      code: 2,
      stdout: '',
      stderr: [
        `error: ${wrong}: the Parquet columns must be geoId, geoName, region, nothing loaded:`,
        '  column geoId is Float64; it must be an integer or text',
        '  columns "geo_name" and "geoName" are both geoName',
        '  column region is UInt8; it must be text (String)',
        '  column "extra" is not one of geoId, geoName, region',
        '',
      ].join('\n'),
    });
    expect(await everything()).toEqual(before);
  });

  it('a file named .parquet that is not Parquet, or Parquet cut short, is refused with the reader’s reason', async () => {
    const before = await everything();
    const path = file('not.parquet', A_CSV);
    expect(await geo(['load', path])).toEqual({ code: 2, stdout: '', stderr: `error: ${path}: cannot read it as Parquet: Not a Parquet file (wrong magic bytes at the end of file)\n` });
    // Whatever its name, a file starting PAR1 is Parquet: a cut one is not read as a CSV with a bad header.
    const whole = readFileSync(await parquet('whole.parquet', 'geoId UInt32, geoName String, region String', `(1, 'One', 'r')`));
    const cut = file('cut.csv', whole.subarray(0, whole.length >> 1));
    expect(await geo(['load', cut])).toEqual({ code: 2, stdout: '', stderr: `error: ${cut}: cannot read it as Parquet: Not a Parquet file (wrong magic bytes at the end of file)\n` });
    expect(await everything()).toEqual(before);
    // --format says which reader, whatever the name.
    expect(await geo(['load', path, '--format', 'csv'])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 4, file: path, format: 'csv' })}\n`, stderr: '' });
  });

  it('export --format parquet, then load, round-trips exactly', async () => {
    expect((await geo(['load', file('a.csv', A_CSV)])).code).toBe(0);
    const { latest } = (await everything())[0]!;
    const out = join(mkdtempSync(join(dir, 'out-')), 'geo.parquet');
    expect(await geo(['export', '--output', out])).toEqual({ code: 0, stdout: `${JSON.stringify({ exported: 4, file: out, format: 'parquet', loadedAt: latest })}\n`, stderr: '' });
    expect(readFileSync(out).subarray(0, 4).toString()).toBe('PAR1');
    // Written beside itself and renamed: nothing else is left in the directory.
    expect(readdirSync(join(out, '..'))).toEqual(['geo.parquet']);
    expect((await geo(['load', file('b.csv', B_CSV)])).code).toBe(0);
    expect(await current()).toEqual(B);
    expect(await geo(['load', out])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 4, file: out, format: 'parquet' })}\n`, stderr: '' });
    expect(await current()).toEqual(A);
  });

  it('export --format csv (to stdout), then load, round-trips exactly', async () => {
    expect((await geo(['load', file('a.csv', A_CSV)])).code).toBe(0);
    const exported = await geo(['export', '--format', 'csv']);
    expect(exported).toEqual({ code: 0, stdout: 'geoId,geoName,region\n1,"Old Town","north"\n2,"Quay ""7"", East","south"\n3,"Zürich 𝄞",""\n4294967295,"Edge","west"\n', stderr: '' });
    const path = file('exported.csv', exported.stdout);
    expect((await geo(['load', file('b.csv', B_CSV)])).code).toBe(0);
    expect(await geo(['load', path])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 4, file: path, format: 'csv' })}\n`, stderr: '' });
    expect(await current()).toEqual(A);
  });

  it('export writes the current load only, not geos an earlier load had and the current one dropped', async () => {
    expect((await geo(['load', file('a.csv', A_CSV)])).code).toBe(0);
    expect((await geo(['load', file('b.csv', B_CSV)])).code).toBe(0);
    expect(await geo(['export'])).toEqual({ code: 0, stdout: 'geoId,geoName,region\n9,"Elsewhere","east"\n', stderr: '' });
  });

  it('export refuses to write Parquet to a terminal', async () => {
    // `script` runs the command on a pseudo-terminal, as a person at a shell would.
    const command = [process.execPath, VCAM_BIN, 'geo', 'export', '--format', 'parquet', ...ch.args].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, VCAM_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    child.stdout.on('data', (d) => (seen += d));
    const code = await new Promise((resolve) => child.once('close', resolve));
    expect({ code, seen: seen.replace(/\r\n/g, '\n') }).toEqual({ code: 2, seen: 'error: Parquet is binary: not written to a terminal; give --output FILE or redirect stdout\n' });
  });

  it('--help documents load (CSV or Parquet) and export', async () => {
    const help = await geo(['--help']);
    expect(help).toEqual({ code: 0, stdout: helpText(geoCommand), stderr: '' });
    expect(help.stdout).toContain('Usage: vcam geo load FILE|s3://BUCKET/KEY [options]\n       vcam geo export [--format csv|parquet] [--output FILE|s3://BUCKET/KEY] [options]\n');
    expect(help.stdout).toContain('or a Parquet file (columns geoId, geoName, region), told apart by a name ending in .parquet or the\n  file starting with PAR1');
    expect(await geo(['load'])).toEqual({ code: 2, stdout: '', stderr: `error: usage: vcam geo load FILE|s3://BUCKET/KEY [options]\n       vcam geo export [--format csv|parquet] [--output FILE|s3://BUCKET/KEY] [options]\n` });
  });
});

describe('vcam geo: files on S3 (the local S3 API, S3Proxy)', () => {
  let s3: LocalS3;
  let flags: string[];
  beforeAll(async () => {
    s3 = await startTestS3();
    const credentials = join(dir, 's3.credentials');
    writeFileSync(credentials, `AWS_ACCESS_KEY_ID=${s3.identity}\nAWS_SECRET_ACCESS_KEY=${s3.credential}\n`, { mode: 0o600 });
    flags = ['--s3-endpoint', s3.endpoint, '--s3-credentials-file', credentials];
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('export to s3://, then load from it, round-trips exactly, as Parquet and as CSV', async () => {
    expect((await geo(['load', file('a.csv', A_CSV)])).code).toBe(0);
    for (const [key, format] of [
      ['geo/current.parquet', 'parquet'],
      ['geo/current.csv', 'csv'],
    ] as const) {
      const url = `s3://lake/${key}`;
      const { latest } = (await everything())[0]!;
      expect(await geo(['export', '--output', url, ...flags])).toEqual({ code: 0, stdout: `${JSON.stringify({ exported: 4, file: url, format, loadedAt: latest })}\n`, stderr: '' });
      const stored = (await s3.store().get(key))!;
      expect(format === 'parquet' ? stored.subarray(0, 4).toString() : stored.toString()).toBe(
        format === 'parquet' ? 'PAR1' : 'geoId,geoName,region\n1,"Old Town","north"\n2,"Quay ""7"", East","south"\n3,"Zürich 𝄞",""\n4294967295,"Edge","west"\n',
      );
      expect((await geo(['load', file('b.csv', B_CSV)])).code).toBe(0);
      expect(await current()).toEqual(B);
      expect(await geo(['load', url, ...flags])).toEqual({ code: 0, stdout: `${JSON.stringify({ loaded: 4, file: url, format })}\n`, stderr: '' });
      expect(await current()).toEqual(A);
    }
  });

  it('a bad Parquet object is refused whole with its row numbers; a missing one is named', async () => {
    const before = await everything();
    const bytes = readFileSync(await parquet('s3bad.parquet', 'geoId Int64, geoName String, region String', `(1, 'One', 'r'), (2, 'Two', 'r'), (3, '', 'r'), (-1, 'Minus', 'r')`));
    expect(await s3.store().putIfAbsent('geo/bad.parquet', bytes)).toBe(true);
    expect(await geo(['load', 's3://lake/geo/bad.parquet', ...flags])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: s3://lake/geo/bad.parquet: 2 bad row(s), nothing loaded:\n  row 3: geoName is empty\n  row 4: geoId "-1" is not an unsigned 32-bit integer\n',
    });
    expect(await geo(['load', 's3://lake/geo/none.parquet', ...flags])).toEqual({ code: 2, stdout: '', stderr: 'error: cannot read s3://lake/geo/none.parquet: there is no such object\n' });
    expect(await geo(['load', 's3://lake', ...flags])).toEqual({ code: 2, stdout: '', stderr: 'error: s3://lake: a geo file on S3 is named s3://bucket/key\n' });
    expect(await everything()).toEqual(before);
  });
});
