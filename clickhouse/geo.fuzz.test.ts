/**
 * Fuzz: the geo reference CSV (`vcam geo load`). Property: a file of well-formed lines gives
 * exactly its rows, once each and in order, and those rows are what the processor's geo table
 * reads back from ClickHouse after the load; a file with bad lines is refused whole with a
 * ConfigError that counts every bad line and names the first twenty with their reason; any
 * other text gives rows or a ConfigError, never another error.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../common/errors.js';
import { GeoTable } from '../processor/geo.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { breathe, fuzzAssert, fuzzInputs, fuzzTimeout, Tally } from '../test/helpers/fuzz.js';
import { loadGeo, parseGeoCsv, type GeoRow } from './geo.js';

const INPUTS = fuzzInputs(1_000);
/** Loads into ClickHouse are the slow part: one in this many well-formed files goes all the way. */
const LOAD_EVERY = Math.max(1, Math.floor(INPUTS / 200));

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(async () => {
  await ch?.stop();
});

const U32 = 4294967295;

/** A field as written: quoted when it must be (or when the generator likes), quotes doubled inside. */
const fieldText = (value: string, quote: boolean) => (quote || /[",]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);

// Names and regions: any text on one line; surrounding whitespace is not part of a field.
const textArb = (minLength: number) =>
  fc.string({ unit: fc.oneof(fc.constantFrom(',', '"', ' ', '\t', 'é', '€', '𝄞', "'", '\\'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength, maxLength: 24 }).filter((s) => !/[\r\n]/.test(s));
const nameArb = textArb(1).filter((s) => s.trim() !== '');
const idText = (id: number) => fc.tuple(fc.nat(2), fc.boolean()).map(([zeros, quote]) => fieldText('0'.repeat(zeros) + String(id), quote));
const padded = (s: string) => fc.tuple(fc.constantFrom('', ' ', '  ', '\t'), fc.constantFrom('', ' ', '\t')).map(([a, b]) => (s.startsWith('"') ? s : `${a}${s}${b}`));

type Line = { kind: 'row'; id: number; name: string; region: string; text: string } | { kind: 'bad'; reason: string; text: string; id?: number } | { kind: 'blank'; text: string };

const rowArb = (ids: fc.Arbitrary<number>) =>
  fc
    .record({ id: ids, name: nameArb, region: textArb(0), q: fc.tuple(fc.boolean(), fc.boolean()) })
    .chain((r) => fc.tuple(idText(r.id), padded(fieldText(r.name, r.q[0])), padded(fieldText(r.region, r.q[1]))).map(([i, n, g]): Line => ({ kind: 'row', id: r.id, name: r.name.trim(), region: r.region.trim(), text: `${i},${n},${g}` })));

const badArb: fc.Arbitrary<Line> = fc.oneof(
  fc.tuple(fc.nat(U32), nameArb).map(([id, name]): Line => ({ kind: 'bad', reason: 'expected 3 fields', text: `${id},${fieldText(name, true)}` })),
  fc
    .tuple(fc.nat(U32), nameArb, fc.array(fc.string({ unit: fc.constantFrom('a', 'b', ' '), maxLength: 3 }), { minLength: 2, maxLength: 4 }))
    .map(([id, name, rest]): Line => ({ kind: 'bad', reason: 'expected 3 fields', text: `${id},${fieldText(name, true)},${rest.join(',')}` })),
  fc
    .tuple(fc.oneof(fc.constantFrom('-1', '1.5', '0x10', '1e3', '', 'abc', String(U32 + 1), '99999999999999999999', '+7', '٣'), fc.integer({ min: -1_000_000, max: -1 }).map(String)), nameArb)
    .map(([id, name]): Line => ({ kind: 'bad', reason: 'is not an unsigned 32-bit integer', text: `${fieldText(id, id === '')},${fieldText(name, true)},north` })),
  fc.tuple(fc.nat(U32), fc.constantFrom('', '""', '   ', '" "')).map(([id, name]): Line => ({ kind: 'bad', reason: 'geoName is empty', text: `${id},${name},north` })),
);

const header = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('geoId,geoName,region', 'geo_id,geo_name,region', 'GEOID,GEONAME,REGION', ' geoId , geoName , region ', 'geoid,\tgeoname,region') },
  { weight: 1, arbitrary: fc.constantFrom('geoId,geoName', 'id,name,region', 'geoName,geoId,region', '', '"geoId","geoName","region"') },
);
const headerOk = (h: string) => ['geoid,geoname,region', 'geo_id,geo_name,region'].includes(h.trim().toLowerCase().replace(/\s/g, ''));

type CsvCase = { kind: 'lines'; header: string; lines: Line[]; crlf: boolean; trailingNewline: boolean } | { kind: 'text'; text: string };

const linesArb = (badWeight: number): fc.Arbitrary<Line[]> =>
  fc.array(
    fc.oneof(
      { weight: 20, arbitrary: rowArb(fc.oneof({ weight: 1, arbitrary: fc.nat(200) }, { weight: 8, arbitrary: fc.nat(U32) }, { weight: 1, arbitrary: fc.constant(U32) })) },
      { weight: 2, arbitrary: fc.constantFrom<Line>({ kind: 'blank', text: '' }, { kind: 'blank', text: '   ' }, { kind: 'blank', text: '\t' }) },
      { weight: badWeight, arbitrary: badArb },
    ),
    { maxLength: 60, size: 'medium' },
  );

const caseArb: fc.Arbitrary<CsvCase> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('lines' as const), header, lines: fc.oneof(linesArb(0), linesArb(2)), crlf: fc.boolean(), trailingNewline: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('utf8')),
        fc.string().map((s) => `geoId,geoName,region\n${s}`),
      )
      .map((text): CsvCase => ({ kind: 'text', text })),
  },
);

function render(c: Extract<CsvCase, { kind: 'lines' }>): string {
  const eol = c.crlf ? '\r\n' : '\n';
  return [c.header, ...c.lines.map((l) => l.text)].join(eol) + (c.trailingNewline ? eol : '');
}

type Expected = { ok: true; rows: GeoRow[] } | { ok: false; refusal: 'header' | 'empty' } | { ok: false; refusal: 'lines'; bad: { line: number; reason: string }[] };

function expected(c: Extract<CsvCase, { kind: 'lines' }>): Expected {
  if (!headerOk(c.header)) return { ok: false, refusal: 'header' };
  const rows: GeoRow[] = [];
  const bad: { line: number; reason: string }[] = [];
  const seen = new Set<number>();
  c.lines.forEach((l, i) => {
    const line = i + 2;
    if (l.kind === 'blank') return;
    if (l.kind === 'bad') return void bad.push({ line, reason: l.reason });
    if (seen.has(l.id)) return void bad.push({ line, reason: `geoId ${l.id} appears twice` });
    seen.add(l.id);
    rows.push({ geo_id: l.id, geo_name: l.name, region: l.region });
  });
  if (bad.length) return { ok: false, refusal: 'lines', bad };
  // A load replaces the table whole, so a file without a single geo is refused rather than loaded as nothing.
  return rows.length ? { ok: true, rows } : { ok: false, refusal: 'empty' };
}

describe('geo CSV fuzz', () => {
  it(`parses ${INPUTS} generated geo CSV files exactly, or refuses them counting every bad line`, { timeout: fuzzTimeout(INPUTS, 10) }, async () => {
    const tally = new Tally();
    const geo = new GeoTable(ch.client);
    let loads = 0;
    let at = Date.now();
    await fuzzAssert(
      'geo CSV',
      fc.asyncProperty(caseArb, async (c) => {
        await breathe();
        // As `vcam geo load` reads it: bytes from a file decoded as UTF-8.
        const text = Buffer.from(c.kind === 'lines' ? render(c) : c.text, 'utf8').toString('utf8');
        let rows: GeoRow[] | undefined;
        let error: unknown;
        try {
          rows = parseGeoCsv(text, 'fuzz.csv');
        } catch (err) {
          error = err;
        }
        if (c.kind === 'text') {
          if (error) expect(error).toBeInstanceOf(ConfigError);
          tally.add(error ? 'random text refused' : 'random text parsed');
          return;
        }
        const want = expected(c);
        if (want.ok) {
          expect(error).toBeUndefined();
          expect(rows).toEqual(want.rows);
          tally.add('files loaded');
          tally.add('rows', want.rows.length);
          if (tally.get('files loaded') % LOAD_EVERY === 0) {
            // All the way: ClickHouse holds this load, and the processor's table reads exactly these rows back.
            await loadGeo(ch.client, rows!, (at += 1));
            await geo.refresh();
            expect(new Map([...geo.current].map(([id, g]) => [id, { geo_name: g.name, region: g.region }]))).toEqual(new Map(want.rows.map((r) => [r.geo_id, { geo_name: r.geo_name, region: r.region }])));
            loads++;
          }
          return;
        }
        expect(error).toBeInstanceOf(ConfigError);
        const message = (error as Error).message;
        if (want.refusal !== 'lines') {
          expect(message).toContain(want.refusal === 'header' ? 'the first line must be the header' : 'no geo lines after the header, nothing loaded');
          tally.add(want.refusal === 'header' ? 'bad header' : 'no geo lines');
          return;
        }
        expect(message).toContain(`fuzz.csv: ${want.bad.length} bad line(s), nothing loaded`);
        for (const b of want.bad.slice(0, 20)) expect(message).toMatch(new RegExp(`line ${b.line}: [^\\n]*${b.reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        expect(message.split('\n')).toHaveLength(1 + Math.min(20, want.bad.length));
        tally.add('files refused');
        tally.add('bad lines', want.bad.length);
      }),
      { numRuns: INPUTS },
    );
    console.log(`[fuzz] geo CSV: ${JSON.stringify(tally)}, ${loads} loads read back from ClickHouse`);
    expect(tally.get('files loaded')).toBeGreaterThan(0);
    expect(tally.get('files refused')).toBeGreaterThan(0);
    expect(loads).toBeGreaterThan(0);
  });
});
