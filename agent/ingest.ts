/**
 * HTTP ingest: `POST /v1/events` with one JSON event, a JSON array, or NDJSON.
 *
 *   202  every event committed; body lists the eventIds in input order
 *   400  some or all events invalid; the valid ones ARE committed (their ids are listed) and
 *        each invalid one has an index, a reason code and a message
 *   401  --ingest-token-file is set and the request has no or the wrong bearer token
 *   403  a cross-site request: an Origin header that is not allowed (none is by default)
 *   405/415  wrong method, or a content type other than JSON or NDJSON
 *   413  body larger than the limit
 *   503  outbox full (reject policy), with Retry-After; nothing of the request was stored
 *
 * A web page in the operator's browser can POST here without a preflight only as text/plain,
 * a form, or without a content type: all three are 415, and a request a browser labels with a
 * foreign Origin is 403, so no page can inject camera events.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from '../common/http.js';
import { VcamError } from '../common/errors.js';
import { sameSecret } from '../common/secrets.js';
import type { Agent } from './agent.js';

export interface IngestOptions {
  maxBodyBytes: number;
  retryAfterS: number;
  /** Origins (scheme://host[:port]) whose pages may post events; none by default. */
  allowedOrigins?: string[];
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
}

type Parsed = { items: unknown[]; lineErrors: { index: number; message: string }[] };

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);

/** JSON or NDJSON from the Content-Type header; anything else (none included) is UNSUPPORTED_MEDIA_TYPE. */
function bodyFormat(contentType: string | undefined): 'json' | 'ndjson' {
  const type = contentType?.split(';')[0]!.trim().toLowerCase() || undefined;
  if (type && NDJSON_TYPES.has(type)) return 'ndjson';
  if (type === 'application/json' || type?.endsWith('+json')) return 'json';
  const what = type ? `content type ${type} is not accepted` : 'a request without a content type is not accepted';
  throw new VcamError('UNSUPPORTED_MEDIA_TYPE', `${what} (a browser form or page could send it); send application/json or application/x-ndjson, e.g. curl -H 'content-type: application/json'`);
}

/** Splits a body into candidate events. Throws INVALID_JSON for a JSON body that does not parse. */
function parseEvents(body: string, format: 'json' | 'ndjson'): Parsed {
  if (format === 'ndjson') return parseNdjson(body);
  try {
    const value: unknown = JSON.parse(body);
    return { items: Array.isArray(value) ? value : [value], lineErrors: [] };
  } catch (err) {
    throw new VcamError('INVALID_JSON', `body is not valid JSON (${(err as Error).message}); send one event, an array, or NDJSON with content-type application/x-ndjson`);
  }
}

function parseNdjson(body: string): Parsed {
  const items: unknown[] = [];
  const lineErrors: Parsed['lineErrors'] = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      items.push(JSON.parse(line));
    } catch (err) {
      // Keep the slot so that indexes in the response match the caller's lines of events.
      lineErrors.push({ index: items.length, message: `line ${i + 1} is not valid JSON (${(err as Error).message})` });
      items.push(INVALID);
    }
  }
  return { items, lineErrors };
}

const INVALID = Symbol('invalid line');

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return !!m && sameSecret(m[1]!, token);
}

export function ingestHandler(agent: Agent, options: IngestOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/events') {
      sendJson(res, 404, { error: 'NOT_FOUND', message: `no route ${path}; events go to POST /v1/events` });
      return;
    }
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: 'METHOD_NOT_ALLOWED', message: 'use POST /v1/events' }, { allow: 'POST' });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !options.allowedOrigins?.includes(origin)) {
      agent.emit('rejected', 'forbidden_origin', 1);
      sendJson(res, 403, { error: 'FORBIDDEN_ORIGIN', message: `cross-site request from ${origin} refused: pages may not post camera events (allow an origin with --allowed-origins)` });
      return;
    }
    if (options.token !== undefined && !tokenMatches(req.headers.authorization, options.token)) {
      agent.emit('rejected', 'unauthorized', 1);
      sendJson(res, 401, { error: 'UNAUTHORIZED', message: 'this agent needs Authorization: Bearer <token> (the token in its --ingest-token-file)' }, { 'www-authenticate': 'Bearer' });
      return;
    }
    try {
      // Before the body is read: a browser's simple request never gets that far.
      const format = bodyFormat(req.headers['content-type']);
      const body = (await readBody(req, options.maxBodyBytes)).toString('utf8');
      if (body.trim() === '') throw new VcamError('INVALID_JSON', 'body is empty; send one event, an array, or NDJSON');
      const { items, lineErrors } = parseEvents(body, format);
      const valid = items.map((it, index) => ({ it, index })).filter(({ it }) => it !== INVALID);
      const result = await agent.record(valid.map((v) => v.it));
      // Map results back to the caller's indexes (NDJSON lines that failed to parse hold a slot).
      const eventIds: (string | null)[] = new Array(items.length).fill(null);
      valid.forEach((v, i) => (eventIds[v.index] = result.eventIds[i]!));
      const rejected = [...lineErrors.map((e) => ({ index: e.index, reason: 'invalid_json' as const, message: e.message })), ...result.rejected.map((r) => ({ ...r, index: valid[r.index]!.index }))].sort((a, b) => a.index - b.index);
      if (lineErrors.length > 0) agent.emit('rejected', 'invalid_json', lineErrors.length);
      const status = rejected.length === 0 ? 202 : 400;
      sendJson(res, status, { accepted: result.accepted, duplicates: result.duplicates, eventIds, ...(rejected.length ? { rejected } : {}) });
    } catch (err) {
      if (!(err instanceof VcamError)) throw err;
      switch (err.code) {
        case 'BODY_TOO_LARGE':
          agent.emit('rejected', 'body_too_large', 1);
          sendJson(res, 413, { error: err.code, message: err.message }, { connection: 'close' });
          return;
        case 'INVALID_JSON':
          agent.emit('rejected', 'invalid_json', 1);
          sendJson(res, 400, { error: err.code, message: err.message });
          return;
        case 'UNSUPPORTED_MEDIA_TYPE':
          agent.emit('rejected', 'unsupported_media_type', 1);
          // The body was never read: close rather than drain what a page may have sent.
          sendJson(res, 415, { error: err.code, message: err.message }, { connection: 'close' });
          return;
        case 'OUTBOX_FULL':
        case 'OUTBOX_CLOSED':
          sendJson(res, 503, { error: err.code, message: err.message }, { 'retry-after': String(options.retryAfterS) });
          return;
        default:
          throw err;
      }
    }
  };
}
