/**
 * HTTP ingest: `POST /v1/events` with one JSON event, a JSON array, or NDJSON.
 *
 *   202  every event committed; body lists the eventIds in input order
 *   400  some or all events invalid; the valid ones ARE committed (their ids are listed) and
 *        each invalid one has an index, a reason code and a message
 *   405/415  wrong method or content type
 *   413  body larger than the limit
 *   503  outbox full (reject policy), with Retry-After; nothing of the request was stored
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from '../common/http.js';
import { VcamError } from '../common/errors.js';
import type { Agent } from './agent.js';

export interface IngestOptions {
  maxBodyBytes: number;
  retryAfterS: number;
}

type Parsed = { items: unknown[]; lineErrors: { index: number; message: string }[] };

/** What `curl -d`, `fetch` with a string body and plain HTTP tools send by default: look at the body instead. */
const SNIFFED_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']);
const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);

/** Splits a body into candidate events. Throws INVALID_JSON for a JSON body that does not parse. */
export function parseEvents(body: string, contentType: string | undefined): Parsed {
  const type = contentType?.split(';')[0]!.trim().toLowerCase() || undefined;
  if (type && NDJSON_TYPES.has(type)) return parseNdjson(body);
  const declaredJson = type === 'application/json' || !!type?.endsWith('+json');
  if (type && !declaredJson && !SNIFFED_TYPES.has(type)) {
    throw new VcamError('UNSUPPORTED_MEDIA_TYPE', `content type ${type} is not supported; send application/json or application/x-ndjson`);
  }
  try {
    const value: unknown = JSON.parse(body);
    return { items: Array.isArray(value) ? value : [value], lineErrors: [] };
  } catch (err) {
    // Without a JSON content type, several lines of JSON objects are NDJSON.
    if (!declaredJson && body.trimEnd().includes('\n')) return parseNdjson(body);
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
    try {
      const body = (await readBody(req, options.maxBodyBytes)).toString('utf8');
      if (body.trim() === '') throw new VcamError('INVALID_JSON', 'body is empty; send one event, an array, or NDJSON');
      const { items, lineErrors } = parseEvents(body, req.headers['content-type']);
      const valid = items.map((it, index) => ({ it, index })).filter(({ it }) => it !== INVALID);
      const result = await agent.record(valid.map((v) => v.it));
      // Map results back to the caller's indexes (NDJSON lines that failed to parse hold a slot).
      const eventIds: (string | null)[] = new Array(items.length).fill(null);
      valid.forEach((v, i) => (eventIds[v.index] = result.eventIds[i]!));
      const rejected = [
        ...lineErrors.map((e) => ({ index: e.index, reason: 'invalid_json' as const, message: e.message })),
        ...result.rejected.map((r) => ({ ...r, index: valid[r.index]!.index })),
      ].sort((a, b) => a.index - b.index);
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
          sendJson(res, 415, { error: err.code, message: err.message });
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
