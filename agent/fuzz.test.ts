/**
 * Fuzz: HTTP requests into a real agent (HTTP server on loopback, SQLite outbox in a temporary
 * directory). Each generated request is checked on its own against the documented ingest
 * behaviour (agent/ingest.ts): status, which items got an eventId, the reason of every refusal,
 * how many were a camera's retry. Then, over all requests: the agent's own counters equal the
 * refusals and acceptances the responses reported, the outbox holds each distinct event exactly
 * once, and once a broker appears every one of them is published, each a valid pipeline event.
 *
 * The broker is away while requests arrive, so that "already waiting in the outbox" (a
 * duplicate) depends only on the requests, not on when a PUBACK came.
 */
import { mkdtempSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPipelineEvent } from '../common/contract.js';
import { collect, freePort, startAedes, waitFor } from '../test/helpers/brokers.js';
import { eventArb, expectEvent, FUZZ_NOW, fuzzAssert, fuzzInputs, fuzzTimeout, notJsonBytes, parsesAsJson, rfc3339Ms, Tally, type Outcome, type Reason } from '../test/helpers/fuzz.js';
import { startAgentService, type AgentService } from './index.js';

const INPUTS = fuzzInputs(1_000);
const MAX_BODY = 16 * 1024;
const CTX = { kind: 'camera', now: FUZZ_NOW } as const;

let svc: AgentService;
let brokerPort: number;
beforeAll(async () => {
  brokerPort = await freePort();
  svc = await startAgentService({
    id: 'gw-fuzz',
    dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-fuzz-')),
    httpPort: 0,
    mqttUrl: `mqtt://127.0.0.1:${brokerPort}`,
    maxBodyBytes: MAX_BODY,
    // Test configuration: durability against power loss is not what is fuzzed here.
    outboxSync: 'normal',
    reconnect: { initialMs: 50, maxMs: 200 },
  });
});
afterAll(async () => {
  keepAlive.destroy();
  await svc?.close();
});

// ---------------------------------------------------------------------------------------------
// Requests.

/** An item of a request: a generated event, or a camera's retry of an earlier accepted one. */
type Item = { value: unknown } | { retryOf: number };
type Encoding = { kind: 'array' } | { kind: 'single' } | { kind: 'ndjson'; junk: { at: number; text: string }[]; crlf: boolean; blank: boolean };
type Req = { kind: 'events'; items: Item[]; encoding: Encoding; contentType?: string } | { kind: 'bytes'; body: Uint8Array; contentType?: string } | { kind: 'route'; method: string; path: string };

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/vnd.vcam+json'];
const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines', 'Application/X-NDJSON; charset=utf-8'];
/** What a web page can send without a preflight, and what curl -d sends: all refused (issue 17). */
const BROWSER = ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream'];
const OTHER = ['application/xml', 'text/html', 'image/png', 'json', '*/*'];
const contentTypeArb = fc.option(
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...JSON_TYPES, ...NDJSON_TYPES) },
    { weight: 2, arbitrary: fc.constantFrom(...BROWSER) },
    { weight: 1, arbitrary: fc.constantFrom(...OTHER) },
    // Any visible ASCII: what a misconfigured client sends.
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 30 })
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    },
  ),
  { nil: undefined, freq: 6 },
);

const itemArb: fc.Arbitrary<Item> = fc.oneof({ weight: 9, arbitrary: eventArb(CTX).map((value) => ({ value })) }, { weight: 1, arbitrary: fc.nat().map((retryOf) => ({ retryOf })) });
const junkLine = fc
  .oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }))
  .map((s) => s.replace(/[\r\n]/g, ' '))
  .filter((s) => s.trim() !== '' && !parsesAsJson(s.trim()));

const reqArb: fc.Arbitrary<Req> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('events' as const),
      items: fc.array(itemArb, { minLength: 1, maxLength: 12 }),
      encoding: fc.oneof(
        fc.constant<Encoding>({ kind: 'array' }),
        fc.constant<Encoding>({ kind: 'single' }),
        fc.record({ kind: fc.constant('ndjson' as const), junk: fc.array(fc.record({ at: fc.nat(), text: junkLine }), { maxLength: 3 }), crlf: fc.boolean(), blank: fc.boolean() }),
      ),
      contentType: contentTypeArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('bytes' as const),
      body: fc.oneof(
        notJsonBytes,
        fc.constantFrom('', ' ', '\n\n', '[]', '{}', 'null', '42', '"x"', '[[]]', '[1,2,3]').map((s) => new Uint8Array(Buffer.from(s))),
        fc.integer({ min: MAX_BODY - 64, max: 4 * MAX_BODY }).map((n) => new Uint8Array(Buffer.alloc(n, '['))),
      ),
      contentType: contentTypeArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('route' as const), method: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH'), path: fc.constantFrom('/v1/events', '/v1/events?x=1') }),
      fc.record({ kind: fc.constant('route' as const), method: fc.constant('POST'), path: fc.constantFrom('/', '/v1/event', '/v2/events', '/v1/events/', '/V1/EVENTS', '/healthz') }),
    ),
  },
);

// ---------------------------------------------------------------------------------------------
// The documented ingest behaviour, as the oracle states it.

type Slot = { kind: 'event'; value: unknown; outcome: Outcome } | { kind: 'badLine'; line: number };
type Want = { status: 404 | 405 } | { status: 413; reason: 'body_too_large' } | { status: 415; reason: 'unsupported_media_type' } | { status: 400; reason: 'invalid_json'; whole: true } | { status: 202 | 400; slots: Slot[] };

function ndjsonSlots(text: string): Slot[] {
  const slots: Slot[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    if (!parsesAsJson(line)) return void slots.push({ kind: 'badLine', line: i + 1 });
    const value: unknown = JSON.parse(line);
    slots.push({ kind: 'event', value, outcome: expectEvent(value, CTX) });
  });
  return slots;
}

function want(method: string, path: string, body: Buffer, contentType: string | undefined): Want {
  if (path.split('?')[0] !== '/v1/events') return { status: 404 };
  if (method !== 'POST') return { status: 405 };
  // The media type is what comes before any parameters, in any case; it is judged before the
  // body is read, and only JSON and NDJSON are taken (no content type at all is refused too).
  const type = contentType?.split(';')[0]!.trim().toLowerCase() || undefined;
  const ndjson = !!type && NDJSON_TYPES.some((t) => t.split(';')[0]!.toLowerCase() === type);
  if (!ndjson && type !== 'application/json' && !type?.endsWith('+json')) return { status: 415, reason: 'unsupported_media_type' };
  if (body.length > MAX_BODY) return { status: 413, reason: 'body_too_large' };
  const text = body.toString('utf8');
  if (text.trim() === '') return { status: 400, reason: 'invalid_json', whole: true };
  let slots: Slot[];
  if (ndjson) slots = ndjsonSlots(text);
  else if (parsesAsJson(text)) {
    const value: unknown = JSON.parse(text);
    slots = (Array.isArray(value) ? value : [value]).map((v) => ({ kind: 'event', value: v, outcome: expectEvent(v, CTX) }));
  } else return { status: 400, reason: 'invalid_json', whole: true };
  return { status: slots.every((s) => s.kind === 'event' && s.outcome.ok) ? 202 : 400, slots };
}

/** Two accepted events are one when the camera's id matches, or, without one, their content does. */
function eventKey(e: Record<string, unknown>): string {
  if (typeof e.eventId === 'string') return `id\0${e.deviceId}\0${e.eventId}`;
  const ts = typeof e.ts === 'string' ? rfc3339Ms(e.ts) : e.ts;
  return `content\0${e.deviceId}\0${e.geoId}\0${ts}\0${e.type}`;
}

function render(r: Extract<Req, { kind: 'events' }>, values: unknown[]): Buffer {
  if (r.encoding.kind === 'array' || (r.encoding.kind === 'single' && values.length !== 1)) return Buffer.from(JSON.stringify(values));
  if (r.encoding.kind === 'single') return Buffer.from(JSON.stringify(values[0]) ?? 'null');
  const lines = values.map((v) => JSON.stringify(v) ?? 'null');
  for (const j of r.encoding.junk) lines.splice(j.at % (lines.length + 1), 0, j.text);
  if (r.encoding.blank) lines.splice(lines.length >> 1, 0, '  ');
  return Buffer.from(lines.join(r.encoding.crlf ? '\r\n' : '\n') + '\n');
}

interface Response {
  status: number;
  body: { error?: string; message?: string; accepted?: number; duplicates?: number; eventIds?: (string | null)[]; rejected?: { index: number; reason: string; message: string }[] };
}

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 1 });

function send(method: string, path: string, body: Buffer, contentType: string | undefined): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-length': body.length };
    if (contentType !== undefined) headers['content-type'] = contentType;
    const req = request({ host: '127.0.0.1', port: svc.port, method, path, headers, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Response['body'] }));
      res.on('error', reject);
    });
    // The agent may answer 413 and close before it has read a large body.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    req.end(body);
  });
}

describe('agent HTTP fuzz', () => {
  it(`answers ${INPUTS} generated requests as documented and counts every event once`, { timeout: fuzzTimeout(INPUTS, 40) }, async () => {
    const rejected = new Tally<string>();
    const outcomes = new Tally();
    let accepted = 0;
    let duplicates = 0;
    /** Accepted events, for a camera's retries. */
    const sentValid: unknown[] = [];
    /** eventId by event key, and back: one id per event, one event per id. */
    const idOf = new Map<string, string>();
    const keyOf = new Map<string, string>();
    const stored = new Set<string>();

    await fuzzAssert(
      'agent HTTP',
      fc.asyncProperty(reqArb, async (r) => {
        let method = 'POST';
        let path = '/v1/events';
        let body: Buffer;
        let contentType: string | undefined;
        if (r.kind === 'route') {
          ({ method, path } = r);
          body = Buffer.from('{}');
        } else if (r.kind === 'bytes') {
          body = Buffer.from(r.body);
          contentType = r.contentType;
        } else {
          const values = r.items.map((it) => ('value' in it ? it.value : sentValid.length ? sentValid[it.retryOf % sentValid.length] : {}));
          body = render(r, values);
          contentType = r.contentType;
        }
        const w = want(method, path, body, contentType);
        const got = await send(method, path, body, contentType);
        expect(got.status, JSON.stringify(got.body)).toBe(w.status);
        if (!('slots' in w)) {
          if ('reason' in w) {
            rejected.add(w.reason);
            expect(got.body.error).toBe({ body_too_large: 'BODY_TOO_LARGE', unsupported_media_type: 'UNSUPPORTED_MEDIA_TYPE', invalid_json: 'INVALID_JSON' }[w.reason]);
          }
          expect(got.body.message).toEqual(expect.any(String));
          outcomes.add('reason' in w ? `whole request ${w.reason}` : 'wrong route');
          return;
        }
        const { eventIds = [], rejected: refusals = [] } = got.body;
        expect(eventIds).toHaveLength(w.slots.length);
        const reasonAt = new Map(refusals.map((x) => [x.index, x]));
        expect(reasonAt.size).toBe(refusals.length);
        let expectAccepted = 0;
        let expectDuplicates = 0;
        w.slots.forEach((s, i) => {
          const refusal = reasonAt.get(i);
          const where = `item ${i} ${JSON.stringify(s.kind === 'event' ? s.value : `line ${s.line}`)?.slice(0, 300)}`;
          if (s.kind === 'badLine') {
            expect(refusal, where).toMatchObject({ reason: 'invalid_json', message: expect.stringContaining(`line ${s.line} is not valid JSON`) });
            expect(eventIds[i]).toBeNull();
            rejected.add('invalid_json');
            return;
          }
          if (!s.outcome.ok) {
            expect(refusal, where).toBeDefined();
            expect(s.outcome.reasons, where).toContain(refusal!.reason as Reason);
            expect(refusal!.message).toMatch(/\S/);
            expect(eventIds[i], where).toBeNull();
            rejected.add(refusal!.reason);
            return;
          }
          expect(refusal, where).toBeUndefined();
          const id = eventIds[i];
          const e = s.value as Record<string, unknown>;
          if (typeof e.eventId === 'string') expect(id, where).toBe(`${e.deviceId}:${e.eventId}`);
          else expect(id, where).toMatch(new RegExp(`^${String(e.deviceId).replace(/\./g, '\\.')}#[0-9a-f]{32}$`));
          const key = eventKey(e);
          expect(idOf.get(key) ?? id, `the same event keeps its id: ${where}`).toBe(id);
          expect(keyOf.get(id!) ?? key, `two events never share an id: ${where}`).toBe(key);
          idOf.set(key, id!);
          keyOf.set(id!, key);
          expectAccepted++;
          if (stored.has(key)) expectDuplicates++;
          else stored.add(key);
          sentValid.push(s.value);
        });
        expect(got.body.accepted).toBe(expectAccepted);
        expect(got.body.duplicates).toBe(expectDuplicates);
        accepted += expectAccepted;
        duplicates += expectDuplicates;
        outcomes.add(w.status === 202 ? 'all accepted' : 'some refused');
      }),
      { numRuns: INPUTS, runTimeoutMs: 30_000 },
    );
    console.log(`[fuzz] agent HTTP: requests ${JSON.stringify(outcomes)}; events accepted ${accepted} (${stored.size} distinct, ${duplicates} retries), refused ${JSON.stringify(rejected)}`);

    // The agent's own counters say what the responses said.
    const metrics = await svc.registry.metrics();
    const counter = (name: string, labels = '') => Number(new RegExp(`^${name}\\{${labels}${labels ? ',' : ''}agent="gw-fuzz"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    const counted = new Tally<string>();
    for (const m of metrics.matchAll(/^vcam_agent_events_rejected_total\{reason="([^"]+)",agent="gw-fuzz"\} (\d+)$/gm)) counted.add(m[1]!, Number(m[2]));
    expect(counted.toJSON()).toEqual(rejected.toJSON());
    expect(counter('vcam_agent_events_accepted_total')).toBe(accepted);
    expect(counter('vcam_agent_events_duplicate_total')).toBe(duplicates);

    // The outbox holds each distinct event once.
    const rows = svc.agent.outbox.peek(0, Number.MAX_SAFE_INTEGER);
    expect(rows).toHaveLength(stored.size);
    expect(new Set(rows.map((row) => row.eventId))).toEqual(new Set(idOf.values()));

    // A broker appears: every one of them is published once, as an event the bridge will take.
    const broker = await startAedes(brokerPort);
    const sub = await collect(broker.url);
    try {
      await sub.waitFor(() => sub.events.length >= stored.size, 120_000, `${stored.size} published events`);
      await waitFor(() => svc.agent.stats().backlogEvents === 0, 10_000, 'the outbox to empty');
      expect(sub.events).toHaveLength(stored.size);
      expect(new Set(sub.events.map((e) => e.eventId))).toEqual(new Set(idOf.values()));
      for (const e of sub.events) {
        const checked = checkPipelineEvent(e, Date.now());
        expect(checked.ok ? true : checked, JSON.stringify(e)).toBe(true);
        expect(e.agentId).toBe('gw-fuzz');
      }
    } finally {
      await sub.stop();
      await svc.close();
      await broker.stop();
    }
  });
});
