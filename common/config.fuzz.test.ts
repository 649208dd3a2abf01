/**
 * Fuzz: config files for the real commands (agent, bridge, processor) through loadConfig.
 * Property: a file that follows the documented rules gives exactly the values the rules say;
 * anything else (bytes that are not JSON, JSON that is not an object, unknown keys including
 * the names of Object.prototype's members, wrong values, values nested or large enough to break
 * a naive error message, missing required options) gives a ConfigError whose message names the
 * file and the key, stays short, and never shows a secret. Never another kind of error.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { agentCommand } from '../agent/cli.js';
import { bridgeCommand } from '../bridge/cli.js';
import { processorCommand } from '../processor/cli.js';
import { breathe, fuzzAssert, fuzzInputs, fuzzTimeout, oddValue, Tally } from '../test/helpers/fuzz.js';
import { loadConfig, type Command, type OptionSpec, type Spec } from './config.js';
import { ConfigError } from './errors.js';

const INPUTS = fuzzInputs(1_000);
const COMMANDS = new Map(([agentCommand, bridgeCommand, processorCommand] as unknown as Command<Spec>[]).map((c) => [c.name, c]));
const dir = mkdtempSync(join(tmpdir(), 'vcam-config-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

// The documented value rules (common/config.ts header and --help), as the oracle states them.
const DURATION: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTES: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

type Parsed = { ok: true; value: unknown } | { ok: false };

function withUnit(raw: unknown, units: Record<string, number>, bare: string): Parsed {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? { ok: true, value: raw * units[bare]! } : { ok: false };
  if (typeof raw !== 'string') return { ok: false };
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? units[(m[2] || bare).toLowerCase()] : undefined;
  return m && unit !== undefined ? { ok: true, value: Math.round(Number(m[1]) * unit) } : { ok: false };
}

function expectValue(spec: OptionSpec, raw: unknown): Parsed {
  switch (spec.type) {
    case 'string':
      return typeof raw === 'string' && (!spec.choices || spec.choices.includes(raw)) ? { ok: true, value: raw } : { ok: false };
    case 'boolean':
      if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') return { ok: true, value: true };
      if (raw === false || raw === 'false' || raw === '0' || raw === 'no') return { ok: true, value: false };
      return { ok: false };
    case 'int':
    case 'number': {
      // Numeric strings are read as JavaScript reads them (Number()), blank ones are not numbers.
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      return Number.isFinite(n) && (spec.type === 'number' || Number.isInteger(n)) ? { ok: true, value: n } : { ok: false };
    }
    case 'list':
      if (Array.isArray(raw)) return raw.every((x) => typeof x === 'string') ? { ok: true, value: raw } : { ok: false };
      return typeof raw === 'string'
        ? {
            ok: true,
            value: raw
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean),
          }
        : { ok: false };
    case 'duration': {
      // The documented rule: a unit is required; a bare 0 is allowed (0 in every unit).
      const bare = typeof raw === 'number' || (typeof raw === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(raw));
      return bare && Number(raw) !== 0 ? { ok: false } : withUnit(raw, DURATION, 'ms');
    }
    case 'bytes':
      return withUnit(raw, BYTES, '');
  }
}

/** Values meant to be valid for an option, in each documented spelling; the oracle still decides. */
function goodValue(spec: OptionSpec): fc.Arbitrary<unknown> {
  const num = fc.oneof(
    fc.nat(100_000),
    fc.double({ min: 0, max: 1e6, noNaN: true }).map((x) => Number(x.toFixed(3))),
  );
  const unitString = (units: Record<string, number>) => fc.tuple(num, fc.constantFrom(...Object.keys(units)), fc.boolean(), fc.constantFrom('', ' ', '  ')).map(([n, u, upper, sp]) => `${sp}${n}${sp}${upper ? u.toUpperCase() : u}${sp}`);
  switch (spec.type) {
    case 'string':
      return spec.choices ? fc.constantFrom(...spec.choices) : fc.string({ unit: 'grapheme', maxLength: 40 });
    case 'boolean':
      return fc.constantFrom(true, false, 'true', 'false', '1', '0', 'yes', 'no');
    case 'int':
      return fc.oneof(fc.integer(), fc.integer().map(String), fc.constantFrom(0, -1, 2 ** 53 - 1));
    case 'number':
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer().map(String));
    case 'list':
      return fc.oneof(
        fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
        fc.array(fc.string({ unit: fc.constantFrom(...'abc:0123. '), maxLength: 10 }), { maxLength: 5 }).map((xs) => xs.join(',')),
      );
    case 'duration':
      return fc.oneof(num, unitString(DURATION));
    case 'bytes':
      return fc.oneof(num, unitString(BYTES));
  }
}

/** A value nested deeper than a recursive printer can follow (written to the file as text, see serialise). */
class Deep {
  constructor(readonly depth: number) {}
  get text(): string {
    return '['.repeat(this.depth) + ']'.repeat(this.depth);
  }
}
const deep = fc.integer({ min: 1_000, max: 30_000 }).map((depth) => new Deep(depth));
const badValue = fc.oneof(
  { weight: 6, arbitrary: oddValue },
  { weight: 1, arbitrary: fc.constantFrom('5 weeks', '-1', '1e3ms', 'TRUE', 'on', '0x10', 'Infinity', '', '   ', '1,5', '10 MiBs') },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 200_000 }).map((n) => 'v'.repeat(n)) },
);

/** Keys that are no option, including the members every object inherits. */
const unknownKey = (cmd: Command<Spec>) =>
  fc
    .oneof(fc.string({ maxLength: 20 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'config', '--port'))
    .filter((k) => !Object.hasOwn(cmd.options, k) && !Object.keys(cmd.options).some((o) => kebab(o) === k));

type Entry = { key: string; option?: string; raw: unknown };
/** Commands by name, so that a counterexample prints the name rather than the whole spec. */
type Case = { cmd: string } & ({ kind: 'text'; text: string | Uint8Array } | { kind: 'entries'; entries: Entry[] } | { kind: 'missing' });

function entriesArb(cmd: Command<Spec>): fc.Arbitrary<Entry[]> {
  const names = Object.keys(cmd.options);
  const entry = (option: string, value: fc.Arbitrary<unknown>) => fc.tuple(fc.boolean(), value).map(([asKebab, raw]): Entry => ({ key: asKebab ? kebab(option) : option, option, raw }));
  const good = fc.subarray(names).chain((opts) => (opts.length ? fc.tuple(...opts.map((o) => entry(o, goodValue(cmd.options[o]!)))) : fc.constant<Entry[]>([])));
  const required = names.filter((n) => cmd.options[n]!.required);
  const bad = fc.oneof(
    fc.constantFrom(...names).chain((o) => entry(o, badValue)),
    fc.tuple(unknownKey(cmd), oddValue).map(([key, raw]): Entry => ({ key, raw })),
  );
  return fc.tuple(good, fc.option(bad, { freq: 2 }), fc.nat(), fc.boolean()).map(([entries, extra, at, dropRequired]) => {
    const out = [...entries];
    // Required options present unless the case is about their absence.
    if (!dropRequired) for (const r of required) if (!out.some((e) => e.option === r)) out.push({ key: r, option: r, raw: r === 'kafkaBrokers' ? 'h:9092' : `x-${r}` });
    if (extra) out.splice(at % (out.length + 1), 0, extra);
    // One spelling per option: a file with both `httpPort` and `http-port` has no single answer.
    const seen = new Set<string>();
    return out.filter((e) => !e.option || (!seen.has(e.option) && seen.add(e.option)));
  });
}

const caseArb: fc.Arbitrary<Case> = fc.constantFrom(...COMMANDS.values()).chain((command) => {
  const cmd = command.name;
  return fc.oneof(
    { weight: 12, arbitrary: entriesArb(command).map((entries): Case => ({ kind: 'entries', cmd, entries })) },
    {
      weight: 3,
      arbitrary: fc
        .oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ unit: 'binary', maxLength: 100 }),
          fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
          entriesArb(command).chain((es) => fc.nat().map((cut) => serialise(es).slice(0, cut % serialise(es).length))),
          fc.constantFrom('', '\ufeff{}', '{}{}', '{"id": 1,}', 'null', '[]', '"{}"'),
          fc.integer({ min: 1_000, max: 50_000 }).map((d) => '['.repeat(d) + ']'.repeat(d)),
        )
        .map((text): Case => ({ kind: 'text', cmd, text })),
    },
    { weight: 1, arbitrary: fc.constant<Case>({ kind: 'missing', cmd }) },
  );
});

type Expected = { ok: true; values: Record<string, unknown> } | { ok: false; refusal: string; mentions: string[]; hides?: string };

function expected(c: Case, path: string): Expected {
  const cmd = COMMANDS.get(c.cmd)!;
  const fileError = (refusal: string, detail: string): Expected => ({ ok: false, refusal, mentions: [`config file ${path}`, detail] });
  if (c.kind === 'missing') return { ok: false, refusal: 'unreadable', mentions: ['cannot read config file', path] };
  let data: unknown;
  if (c.kind === 'text') {
    try {
      data = JSON.parse(Buffer.from(c.text).toString('utf8'));
    } catch {
      return fileError('not JSON', 'is not valid JSON');
    }
  } else data = JSON.parse(serialise(c.entries));
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fileError('not an object', 'the top level must be an object');
  const values: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(data)) {
    const option = Object.hasOwn(cmd.options, key) ? key : Object.keys(cmd.options).find((o) => kebab(o) === key);
    if (!option) return fileError('unknown key', `unknown key "${key}"`);
    const spec = cmd.options[option]!;
    const v = expectValue(spec, raw);
    if (!v.ok) {
      const shown = Array.isArray(raw) ? undefined : JSON.stringify(raw);
      return { ...fileError('bad value', `"${key}"`), hides: spec.secret && shown && shown.length >= 8 ? shown : undefined } as Expected;
    }
    values[option] = v.value;
  }
  for (const [option, spec] of Object.entries(cmd.options)) if (spec.required && !(option in values)) return { ok: false, refusal: 'required missing', mentions: [`--${kebab(option)} is required`] };
  return { ok: true, values };
}

/** Written by hand rather than JSON.stringify(object): keys such as "__proto__" must reach the file. */
function serialise(entries: Entry[]): string {
  return `{${entries.map((e) => `${JSON.stringify(e.key)}:${e.raw instanceof Deep ? e.raw.text : (JSON.stringify(e.raw) ?? 'null')}`).join(',')}}`;
}

describe('config file fuzz', () => {
  it(`loads ${INPUTS} generated config files exactly or refuses them with a ConfigError`, { timeout: fuzzTimeout(INPUTS, 5) }, async () => {
    const outcomes = new Tally();
    let n = 0;
    await fuzzAssert(
      'config files',
      fc.asyncProperty(caseArb, async (c) => {
        await breathe();
        const path = join(dir, `c${n++}.json`);
        if (c.kind === 'text') writeFileSync(path, c.text);
        else if (c.kind === 'entries') writeFileSync(path, serialise(c.entries));
        const want = expected(c, path);
        let got: ReturnType<typeof loadConfig<Spec>> | undefined;
        let error: unknown;
        try {
          got = loadConfig(COMMANDS.get(c.cmd)!, ['--config', path], {});
        } catch (err) {
          error = err;
        }
        if (want.ok) {
          expect(error).toBeUndefined();
          expect(got!.help).toBe(false);
          const config = (got as { config: Record<string, unknown> }).config;
          for (const [option, value] of Object.entries(want.values)) expect(config[option], option).toEqual(value);
          outcomes.add('loaded');
        } else {
          expect(error).toBeInstanceOf(ConfigError);
          const message = (error as Error).message;
          for (const m of want.mentions) expect(message).toContain(m);
          // An error message is read by a person: a value of a megabyte or a thousand levels is not printed whole.
          expect(message.length).toBeLessThan(1_000 + path.length);
          if (want.hides) expect(message.replace(path, '')).not.toContain(want.hides);
          outcomes.add(want.refusal);
        }
        if (c.kind !== 'missing') rmSync(path);
      }),
      { numRuns: INPUTS },
    );
    console.log(`[fuzz] config files: ${JSON.stringify(outcomes)}`);
    expect(outcomes.get('loaded')).toBeGreaterThan(0);
    expect(outcomes.total - outcomes.get('loaded')).toBeGreaterThan(0);
  });

  it('reads a directory given as the config file as unreadable, not as a crash', () => {
    const d = join(dir, 'a-directory.json');
    mkdirSync(d);
    expect(() => loadConfig(agentCommand, ['--config', d], {})).toThrow(ConfigError);
  });
});
