/**
 * Shared pieces of the property-based fuzz tests (fast-check), one per input boundary:
 * agent/fuzz.test.ts, bridge/fuzz.test.ts, processor/fuzz.test.ts, common/config.fuzz.test.ts,
 * clickhouse/geo.fuzz.test.ts.
 *
 * VCAM_FUZZ_RUNS sets the number of generated inputs per boundary (each test has a small
 * default for `npm test`; `npm run fuzz` uses 100,000) and VCAM_FUZZ_SEED the seed; every test
 * prints both, so a failure replays with the same two variables (plus VCAM_FUZZ_PATH, printed on
 * failure, to jump straight to the failing run).
 *
 * The event model below is the oracle: a statement of the v1 contract written from its
 * documentation (docs/DESIGN data contract, the comments of common/contract.ts), not from the
 * validator's code. For any JSON value it says whether a component must accept it, or which
 * reasons it may give when it refuses. More than one reason is allowed only when a value breaks
 * several rules at the same stage, where the contract does not say which one is reported.
 */
import fc from 'fast-check';
import { Validator, type Schema } from '@cfworker/json-schema';
import { cameraEventSchema, pipelineEventSchema, type RejectReason } from '../../common/contract.js';

export const FUZZ_SEED = intFromEnv('VCAM_FUZZ_SEED', 20261125);
const FUZZ_PATH = process.env.VCAM_FUZZ_PATH || undefined;
/**
 * The clock generated event times are relative to: the start of the current hour, so that a
 * failure replays with the same inputs for an hour (VCAM_FUZZ_NOW, printed, pins it for longer).
 * Components validate against their own, later clock; the generators leave room for that.
 */
export const FUZZ_NOW = intFromEnv('VCAM_FUZZ_NOW', Math.floor(Date.now() / 3_600_000) * 3_600_000);

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${raw} is not an integer`);
  return n;
}

/** Inputs per boundary: VCAM_FUZZ_RUNS, or the test's own default for `npm test`. */
export function fuzzInputs(npmTestDefault: number): number {
  const n = intFromEnv('VCAM_FUZZ_RUNS', npmTestDefault);
  if (n < 1) throw new Error(`VCAM_FUZZ_RUNS must be at least 1, not ${n}`);
  return n;
}

/** A vitest timeout that grows with the number of inputs, so the long run is not cut short. */
export function fuzzTimeout(inputs: number, msPerInput: number, fixedMs = 60_000): number {
  return fixedMs + Math.ceil(inputs * msPerInput);
}

const truncate = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s);

/**
 * fc.assert with the fixed seed, a per-run time limit (a hang fails the run instead of the whole
 * test timing out without saying which input) and a failure report short enough to read:
 * fast-check's own would print counterexamples of thousands of messages whole.
 */
export async function fuzzAssert<Ts extends [unknown, ...unknown[]]>(
  name: string,
  property: fc.IAsyncProperty<Ts> | fc.IProperty<Ts>,
  o: { numRuns: number; runTimeoutMs?: number; shrink?: boolean; counterexampleChars?: number },
): Promise<void> {
  console.log(`[fuzz] ${name}: ${o.numRuns} runs, VCAM_FUZZ_SEED=${FUZZ_SEED} VCAM_FUZZ_NOW=${FUZZ_NOW}${FUZZ_PATH ? ` VCAM_FUZZ_PATH=${FUZZ_PATH}` : ''}`);
  const started = Date.now();
  await fc.assert(property as fc.IAsyncProperty<Ts>, {
    seed: FUZZ_SEED,
    numRuns: o.numRuns,
    path: FUZZ_PATH,
    timeout: o.runTimeoutMs,
    // Shrinking re-runs smaller inputs against a component that keeps state; where a run is
    // expensive (a Kafka round) the first failure with its seed and path is the better report.
    endOnFailure: o.shrink === false,
    reporter: (d) => {
      if (!d.failed) return;
      const error = d.errorInstance instanceof Error ? (d.errorInstance.stack ?? d.errorInstance.message) : String(d.errorInstance);
      throw new Error(
        `${name} failed after ${d.numRuns} run(s) (${d.numShrinks} shrinks). Replay: VCAM_FUZZ_SEED=${d.seed} VCAM_FUZZ_NOW=${FUZZ_NOW} VCAM_FUZZ_PATH=${d.counterexamplePath ?? ''}\n` +
          `${truncate(error, 4_000)}\ncounterexample: ${truncate(fc.stringify(d.counterexample), o.counterexampleChars ?? 2_000)}`,
      );
    },
  });
  console.log(`[fuzz] ${name}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

let turns = 0;
/**
 * Gives the event loop a turn every few hundred inputs. A property that never waits for I/O
 * keeps the vitest worker from answering its runner, which gives up after a minute
 * ("Timeout calling onTaskUpdate") in the long run.
 */
export async function breathe(): Promise<void> {
  if (++turns % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------------------------------------
// The contract, as the oracle states it.

/** The reasons are the contract's vocabulary; which applies to which value is the oracle's own judgement below. */
export type Reason = RejectReason | 'invalid_payload' | 'agent_mismatch' | 'too_old';

export type Outcome = { ok: true } | { ok: false; reasons: Reason[] };

export interface EventContext {
  /** What a camera sends to an agent, or what an agent publishes (and the bridge forwards). */
  kind: 'camera' | 'pipeline';
  /** The clock the component validates against. */
  now: number;
  /**
   * True when `now` is exactly the component's clock (the processor validates against the
   * Kafka message time, which the test sets). Otherwise the component's clock runs ahead of
   * `now` by the test's duration, and generators keep event times away from the future bound.
   */
  exactClock?: boolean;
  /** Bridge: events must carry the connected agent's id. */
  agentId?: string;
  /** Processor: events older than this cannot be deduplicated any more. */
  tooOldBefore?: number;
}

const MIN_TS = Date.UTC(2000, 0, 1);
const FUTURE_MS = 5 * 60_000;
/** Inexact clocks: event times in [now + AMBIGUOUS_FROM, now + AMBIGUOUS_TO) are never generated. */
const AMBIGUOUS_FROM = 60_000;
const AMBIGUOUS_TO = 2 * 86_400_000;
const U32 = 4294967295;
const ATTRS_BYTES = 1024;
const ATTRS_KEYS = 32;
const MAX_EPOCH_MS = Date.UTC(2200, 0, 1);

type Rule = (v: unknown) => Reason | undefined;

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
export const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const chars =
  (allowed: RegExp, max: number): Rule =>
  (v) => {
    if (typeof v !== 'string') return 'wrong_type';
    return v.length >= 1 && v.length <= max && [...v].every((c) => allowed.test(c)) ? undefined : 'invalid_value';
  };
const int =
  (min: number, max = Infinity): Rule =>
  (v) =>
    !isInt(v) ? 'wrong_type' : v < min || v > max ? 'invalid_value' : undefined;

const ID = /^[A-Za-z0-9._-]$/;
const PRINTABLE = /^[\x21-\x7e]$/;
const TYPE = /^[A-Za-z0-9._:-]$/;

const RULES: Record<EventContext['kind'], { required: string[]; fields: Record<string, Rule> }> = {
  camera: {
    required: ['deviceId', 'geoId', 'ts', 'type'],
    fields: {
      eventId: chars(PRINTABLE, 128),
      deviceId: chars(ID, 64),
      geoId: int(0, U32),
      // Epoch ms or an RFC 3339 string of at most 40 characters; the time itself is checked later.
      ts: (v) => (typeof v === 'string' ? ([...v].length > 40 ? 'invalid_value' : undefined) : isInt(v) ? undefined : 'wrong_type'),
      type: chars(TYPE, 32),
      confidence: (v) => (typeof v !== 'number' ? 'wrong_type' : v < 0 || v > 1 ? 'invalid_value' : undefined),
      attrs: (v) => (!isPlainObject(v) ? 'wrong_type' : Object.keys(v).length > ATTRS_KEYS ? 'invalid_value' : undefined),
    },
  },
  pipeline: {
    required: ['eventId', 'deviceId', 'geoId', 'ts', 'type', 'agentId', 'seq', 'receivedAt'],
    fields: {
      eventId: chars(PRINTABLE, 200),
      deviceId: chars(ID, 64),
      geoId: int(0, U32),
      ts: int(0),
      type: chars(TYPE, 32),
      confidence: (v) => (typeof v !== 'number' ? 'wrong_type' : v < 0 || v > 1 ? 'invalid_value' : undefined),
      attrs: (v) => (!isPlainObject(v) ? 'wrong_type' : Object.keys(v).length > ATTRS_KEYS ? 'invalid_value' : undefined),
      agentId: chars(ID, 64),
      // Integers JSON keeps exact, and times inside what ClickHouse stores (the contract's LIMITS).
      seq: int(1, 2 ** 53 - 1),
      receivedAt: int(MIN_TS, MAX_EPOCH_MS),
    },
  },
};

const SCHEMAS: Record<EventContext['kind'], Validator> = {
  camera: new Validator(cameraEventSchema as unknown as Schema, '2020-12', true),
  pipeline: new Validator(pipelineEventSchema as unknown as Schema, '2020-12', true),
};

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const daysIn = (y: number, m: number) => (m === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : DAYS[m - 1]!);

/** RFC 3339 date-time (fractions to nanoseconds) as epoch ms, or undefined when it is not one. */
export function rfc3339Ms(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 59) return undefined;
  const oh = m[10] ? Number(m[10]) : 0;
  const om = m[11] ? Number(m[11]) : 0;
  if (oh > 23 || om > 59) return undefined;
  const ms = m[7] ? Number(m[7].padEnd(3, '0').slice(0, 3)) : 0;
  const offset = (m[9] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, sec, ms);
  return date.getTime() - offset;
}

/** What the contract says a component does with this value (a parsed JSON value). */
export function expectEvent(value: unknown, ctx: EventContext): Outcome {
  if (!isPlainObject(value)) return { ok: false, reasons: ['not_an_object'] };
  const rules = RULES[ctx.kind];
  // Stage 1, the shape: missing, unknown and malformed fields.
  const shape = new Set<Reason>();
  for (const f of rules.required) if (!Object.hasOwn(value, f)) shape.add('missing_field');
  for (const [k, v] of Object.entries(value)) {
    const rule = Object.hasOwn(rules.fields, k) ? rules.fields[k]! : undefined;
    const r = rule ? rule(v) : 'unknown_field';
    if (r) shape.add(r);
  }
  // A second opinion on the shape that shares no code with the oracle or the components: the
  // contract's JSON Schema read by another validator (@cfworker/json-schema, not ajv).
  const schemaSays = SCHEMAS[ctx.kind].validate(value).valid;
  if (schemaSays !== (shape.size === 0)) {
    throw new Error(`oracle bug or schema bug: the oracle ${shape.size ? `refuses (${[...shape].join(', ')})` : 'accepts'} and the JSON Schema ${schemaSays ? 'accepts' : 'refuses'} ${JSON.stringify(value)?.slice(0, 300)}`);
  }
  if (shape.size) return { ok: false, reasons: [...shape] };
  // Stage 2, what the shape cannot say: the event time and the size of attrs.
  const content = new Set<Reason>();
  const ts = typeof value.ts === 'string' ? rfc3339Ms(value.ts) : (value.ts as number);
  if (ts === undefined || ts < MIN_TS) content.add('invalid_ts');
  else {
    if (!ctx.exactClock && ts >= ctx.now + AMBIGUOUS_FROM && ts < ctx.now + AMBIGUOUS_TO) throw new Error(`generator bug: event time ${ts} is too close to the future bound at ${ctx.now}`);
    if (ts > ctx.now + FUTURE_MS) content.add('future_ts');
  }
  if (value.attrs !== undefined && Buffer.byteLength(JSON.stringify(value.attrs)) > ATTRS_BYTES) content.add('attrs_too_large');
  if (content.size) return { ok: false, reasons: [...content] };
  // Stage 3, the component's own rule.
  if (ctx.agentId !== undefined && value.agentId !== ctx.agentId) return { ok: false, reasons: ['agent_mismatch'] };
  if (ctx.tooOldBefore !== undefined && (ts as number) < ctx.tooOldBefore) return { ok: false, reasons: ['too_old'] };
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------
// Generators.

const charFrom = (alphabet: string) => fc.constantFrom(...alphabet);
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-';
const TYPE_ALPHABET = `${ID_ALPHABET}:`;
const PRINTABLE_ALPHABET = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');

// Built once: fc.constantFrom indexes its values, which costs more than drawing from them.
const ID_CHAR = charFrom(ID_ALPHABET);
const TYPE_CHAR = charFrom(TYPE_ALPHABET);
const PRINTABLE_CHAR = charFrom(PRINTABLE_ALPHABET);
const idArb = (max = 64) => fc.string({ unit: ID_CHAR, minLength: 1, maxLength: max });
const printableArb = (max: number, min = 1) => fc.string({ unit: PRINTABLE_CHAR, minLength: min, maxLength: max });
const typeArb = fc.oneof(fc.constantFrom('person', 'vehicle', 'motion'), fc.string({ unit: TYPE_CHAR, minLength: 1, maxLength: 32 }));
/** A few devices often, so that partitions, buckets and dedup state fill up; any device sometimes. */
const deviceArb = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 40 }).map((i) => `cam-${i}`) }, { weight: 1, arbitrary: idArb() });
const geoArb = fc.oneof({ weight: 3, arbitrary: fc.nat(60) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: U32 }) });

/** Values that fit in an attrs object of at most 1 KiB and 32 keys, ASCII and not. */
const smallJson = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 3 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
const attrsArb = fc.dictionary(fc.string({ maxLength: 10 }), smallJson, { maxKeys: 6 });

/** Any JSON-ish value, including what JSON turns into something else (NaN, -0, lone surrogates). */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.double(),
  fc.integer(),
  fc.constantFrom(-1, 0, 1, 1.5, -0, 2 ** 31, 2 ** 32, U32 + 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e21, 1e300, -1e300, '', ' ', '0', 'null', 'true', '{}', '[]', '\u0000', '\ud800', 'é'),
  fc.nat(20_000).map((n) => 'x'.repeat(n)),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 4 }),
);

/** Event times: valid, before 2000 (seconds sent as ms, RFC 3339 with bad calendar fields), far future, very old. */
function tsArb(ctx: EventContext, asString: boolean): fc.Arbitrary<unknown> {
  const past = fc.integer({ min: 1_000, max: 3_600_000 }).map((d) => ctx.now - d);
  const future = fc.integer({ min: AMBIGUOUS_TO, max: 100 * 365 * 86_400_000 }).map((d) => ctx.now + d);
  const old = fc.integer({ min: MIN_TS, max: ctx.now - 40 * 86_400_000 });
  const seconds = fc.integer({ min: 0, max: MIN_TS - 1 });
  const numbers = fc.oneof(past, past, future, old, seconds, fc.constantFrom(MIN_TS - 1, MIN_TS, 0));
  if (!asString) return numbers;
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  // Calendar fields drawn loosely (day 31 of every month, hour 24, second 60, offset 24:00) on purpose.
  const text = fc
    .record({
      when: fc.oneof(past, old, future),
      y: fc.option(fc.integer({ min: 1990, max: 2030 })),
      mo: fc.integer({ min: 0, max: 13 }),
      d: fc.integer({ min: 0, max: 32 }),
      h: fc.integer({ min: 0, max: 24 }),
      mi: fc.integer({ min: 0, max: 60 }),
      s: fc.integer({ min: 0, max: 60 }),
      loose: fc.boolean(),
      frac: fc.option(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 10 })),
      sep: fc.constantFrom('T', 't', ' '),
      zone: fc.oneof(
        fc.constantFrom('Z', 'z', '+00:00', '-00:00'),
        fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 })).map(([s, h, m]) => `${s}${pad(h, 2)}:${pad(m, 2)}`),
      ),
    })
    .map((r) => {
      const iso = new Date(r.when).toISOString(); // a real date; its fields replaced when `loose`
      const date = r.loose && r.y !== null ? `${pad(r.y, 4)}-${pad(r.mo, 2)}-${pad(r.d, 2)}` : iso.slice(0, 10);
      const time = r.loose ? `${pad(r.h, 2)}:${pad(r.mi, 2)}:${pad(r.s, 2)}` : iso.slice(11, 19);
      return `${date}${r.sep}${time}${r.frac ? `.${r.frac}` : ''}${r.loose ? r.zone : 'Z'}`;
    })
    .filter((s) => !ambiguous(rfc3339Ms(s), ctx));
  return fc.oneof(numbers, text, text);
}

const ambiguous = (ts: number | undefined, ctx: EventContext) => !ctx.exactClock && ts !== undefined && ts >= ctx.now + AMBIGUOUS_FROM && ts < ctx.now + AMBIGUOUS_TO;

/** A value for one field: valid, just outside the rules, or anything at all. */
function fieldValue(field: string, ctx: EventContext): fc.Arbitrary<unknown> {
  const odd = oddValue.filter((v) => !(field === 'ts' && typeof v === 'number' && ambiguous(v, ctx)));
  const near: Record<string, fc.Arbitrary<unknown>> = {
    eventId: fc.oneof(printableArb(200), printableArb(260, 120), fc.string({ maxLength: 30 })),
    deviceId: fc.oneof(
      idArb(),
      idArb(80).map((s) => s.padEnd(65, 'x')),
      fc.string({ maxLength: 10 }),
    ),
    agentId: fc.oneof(idArb(), fc.constantFrom(ctx.agentId ?? 'gw-x'), fc.string({ maxLength: 10 })),
    geoId: fc.oneof(fc.integer({ min: -2, max: 2 }), fc.constantFrom(U32, U32 + 1), fc.double({ min: 0, max: 10 })),
    ts: tsArb(ctx, ctx.kind === 'camera'),
    type: fc.oneof(typeArb, fc.string({ unit: TYPE_CHAR, minLength: 33, maxLength: 40 }), fc.string({ maxLength: 8 })),
    confidence: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: -2, max: 3, noNaN: true }), fc.constantFrom(0, 1, 1.0000001, -Number.MIN_VALUE)),
    attrs: fc.oneof(
      attrsArb,
      fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), fc.nat(9), { minKeys: 30, maxKeys: 36 }),
      fc.nat(1_200).map((n) => ({ blob: 'z'.repeat(n) })),
      fc.nat(4_000).map((n) => ({ blob: 'z'.repeat(n) })),
    ),
    seq: fc.oneof(fc.integer({ min: -2, max: 1_000_000 }), fc.constantFrom(2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64, 1e300)),
    receivedAt: fc.oneof(fc.integer({ min: MIN_TS, max: ctx.now }), fc.integer({ min: -2, max: MIN_TS }), fc.constantFrom(ctx.now, MIN_TS - 1, MIN_TS, MAX_EPOCH_MS, MAX_EPOCH_MS + 1, Date.UTC(2300, 0, 1), 2 ** 53 - 1, 1e20, 1e300)),
  };
  return fc.oneof({ weight: 3, arbitrary: near[field] ?? odd }, { weight: 1, arbitrary: odd });
}

/** An event every component must accept (given the context). */
export function validEvent(ctx: EventContext): fc.Arbitrary<Record<string, unknown>> {
  const now = fc.integer({ min: 1_000, max: 3_600_000 }).map((d) => ctx.now - d);
  const common = {
    deviceId: deviceArb,
    geoId: geoArb,
    type: typeArb,
    confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    attrs: attrsArb,
  };
  if (ctx.kind === 'camera') {
    const ts = fc.oneof(
      now,
      now.map((ms) => new Date(ms).toISOString()),
    );
    return fc.record({ eventId: printableArb(128), ...common, ts }, { requiredKeys: ['deviceId', 'geoId', 'ts', 'type'] });
  }
  return fc
    .record(
      { suffix: printableArb(120), ...common, ts: now, agentId: fc.constant(ctx.agentId ?? 'gw-fuzz'), seq: fc.integer({ min: 1, max: 2 ** 40 }), receivedAt: fc.constant(ctx.now) },
      { requiredKeys: ['suffix', 'deviceId', 'geoId', 'ts', 'type', 'agentId', 'seq', 'receivedAt'] },
    )
    .map(({ suffix, ...e }) => ({ eventId: `${e.deviceId}:${suffix}`, ...e }));
}

type Mutation = { op: 'set'; field: string; value: unknown } | { op: 'delete'; field: string } | { op: 'add'; key: string; value: unknown };

function mutationArb(ctx: EventContext): fc.Arbitrary<Mutation> {
  const fields = Object.keys(RULES[ctx.kind].fields);
  const set = fields.map((field) => fieldValue(field, ctx).map((value): Mutation => ({ op: 'set', field, value })));
  return fc.oneof(
    { weight: 8, arbitrary: fc.oneof(...set) },
    { weight: 1, arbitrary: fc.constantFrom(...fields).map((field): Mutation => ({ op: 'delete', field })) },
    { weight: 1, arbitrary: fc.record({ key: fc.string({ maxLength: 12 }).filter((k) => !fields.includes(k)), value: oddValue }).map((m): Mutation => ({ op: 'add', ...m })) },
  );
}

function mutate(e: Record<string, unknown>, ms: Mutation[]): Record<string, unknown> {
  const out = { ...e };
  for (const m of ms) {
    if (m.op === 'delete') delete out[m.field];
    // defineProperty: a key such as "__proto__" must become a field, as JSON.parse makes it.
    else Object.defineProperty(out, m.op === 'set' ? m.field : m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * Events as a component receives them: about half valid, most of the rest broken in one or two
 * fields, a few anything at all.
 */
export function eventArb(ctx: EventContext): fc.Arbitrary<unknown> {
  const valid = validEvent(ctx);
  return fc.oneof({ weight: 10, arbitrary: valid }, { weight: 8, arbitrary: fc.tuple(valid, fc.array(mutationArb(ctx), { minLength: 1, maxLength: 2 })).map(([e, ms]) => mutate(e, ms)) }, { weight: 1, arbitrary: oddValue });
}

/** Bytes that are not JSON (checked: the oracle is JSON.parse itself). */
export const notJsonBytes: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Uint8Array.from([0xff, ...b])),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }).map((s) => new Uint8Array(Buffer.from(s))),
    fc.tuple(fc.jsonValue(), fc.nat()).map(([v, cut]) => {
      const text = JSON.stringify(v) ?? 'null';
      return new Uint8Array(Buffer.from(text.slice(0, cut % Math.max(1, text.length))));
    }),
  )
  .filter((b) => !parsesAsJson(Buffer.from(b).toString('utf8')));

export function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Counts by key, for comparing tallies. */
export class Tally<K extends string = string> {
  readonly counts = new Map<K, number>();
  add(k: K, n = 1): void {
    if (n) this.counts.set(k, (this.counts.get(k) ?? 0) + n);
  }
  get(k: K): number {
    return this.counts.get(k) ?? 0;
  }
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}
