/**
 * The event contract, version 1: the single source of truth for every component.
 *
 * Two shapes:
 *  - CameraEvent: what a camera (or anything in front of an agent) sends. eventId is optional
 *    and ts may be epoch milliseconds or RFC 3339.
 *  - PipelineEvent: what leaves the agent. eventId is always set and stable, ts is epoch ms, and
 *    the agent has added agentId, its sequence number and its receive time.
 *
 * Validation is a compiled JSON Schema (ajv) followed by the few checks a schema cannot express
 * (timestamps, attrs size). ajv was chosen by measurement against zod, TypeBox's compiler and a
 * hand-written validator: see bench/validators.ts and docs/architecture.md.
 */
import { hash } from 'node:crypto';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

export const CONTRACT_VERSION = 1;

export const LIMITS = {
  idLength: 64,
  cameraEventIdLength: 128,
  eventIdLength: 200,
  typeLength: 32,
  attrsBytes: 1024,
  attrsKeys: 32,
  /** Timestamps before 2000-01-01 are almost always seconds sent as milliseconds. */
  minTs: Date.UTC(2000, 0, 1),
  /** Camera clocks drift; beyond this an event is called future-dated and rejected. */
  maxFutureMs: 5 * 60_000,
  /**
   * The latest time an agent's clock field (receivedAt) may hold: far beyond any real clock and
   * inside ClickHouse's DateTime64, which ends in 2299. Outside [minTs, maxEpochMs] a value is no
   * time, and written to ClickHouse (which also cannot read the seconds of the early 1970s in
   * our format) it would fail every insert of its chunk.
   */
  maxEpochMs: Date.UTC(2200, 0, 1),
} as const;

/**
 * A time from outside the contract (a Kafka message timestamp, a header) as the time a row is
 * kept from: itself when it lies between `now - keepMs` and maxEpochMs, else `now`. A row dated
 * older than its table's retention is expired by ClickHouse as it is inserted, and one dated
 * where ClickHouse cannot read it fails the insert of everything written with it.
 */
export function storableTime(ms: number, now: number, keepMs: number): number {
  return Number.isFinite(ms) && ms >= now - keepMs && ms <= LIMITS.maxEpochMs ? ms : now;
}

export interface CameraEvent {
  eventId?: string;
  deviceId: string;
  geoId: number;
  ts: number | string;
  type: string;
  confidence?: number;
  attrs?: Record<string, unknown>;
}

export interface PipelineEvent {
  eventId: string;
  deviceId: string;
  geoId: number;
  ts: number;
  type: string;
  confidence?: number;
  attrs?: Record<string, unknown>;
  agentId: string;
  seq: number;
  receivedAt: number;
}

/** Why an event was refused; also the `reason` label of every rejection counter and DLQ row. */
export type RejectReason = 'invalid_json' | 'not_an_object' | 'missing_field' | 'unknown_field' | 'wrong_type' | 'invalid_value' | 'invalid_ts' | 'future_ts' | 'attrs_too_large';

export interface Rejection {
  reason: RejectReason;
  message: string;
}

export type Checked<T> = { ok: true; event: T } | { ok: false; reason: RejectReason; message: string };

const ID_PATTERN = `^[A-Za-z0-9._-]{1,${LIMITS.idLength}}$`;
const PRINTABLE = (max: number) => `^[\\x21-\\x7e]{1,${max}}$`;

const common = {
  deviceId: { type: 'string', pattern: ID_PATTERN },
  geoId: { type: 'integer', minimum: 0, maximum: 4294967295 },
  type: { type: 'string', pattern: `^[A-Za-z0-9._:-]{1,${LIMITS.typeLength}}$` },
  confidence: { type: 'number', minimum: 0, maximum: 1 },
  attrs: { type: 'object', maxProperties: LIMITS.attrsKeys },
} as const;

export const cameraEventSchema = {
  $id: 'https://vcam.dev/schemas/v1/camera-event.json',
  type: 'object',
  additionalProperties: false,
  required: ['deviceId', 'geoId', 'ts', 'type'],
  properties: {
    eventId: { type: 'string', pattern: PRINTABLE(LIMITS.cameraEventIdLength) },
    ...common,
    ts: { type: ['integer', 'string'], maxLength: 40 },
  },
} as const;

export const pipelineEventSchema = {
  $id: 'https://vcam.dev/schemas/v1/pipeline-event.json',
  type: 'object',
  additionalProperties: false,
  required: ['eventId', 'deviceId', 'geoId', 'ts', 'type', 'agentId', 'seq', 'receivedAt'],
  properties: {
    eventId: { type: 'string', pattern: PRINTABLE(LIMITS.eventIdLength) },
    ...common,
    ts: { type: 'integer', minimum: 0 },
    agentId: { type: 'string', pattern: ID_PATTERN },
    // JSON integers beyond 2^53 are not exact any more (and 1e21 is not even written as digits).
    seq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    receivedAt: { type: 'integer', minimum: LIMITS.minTs, maximum: LIMITS.maxEpochMs },
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const checkCamera = ajv.compile(cameraEventSchema) as ValidateFunction<CameraEvent>;
const checkPipeline = ajv.compile(pipelineEventSchema) as ValidateFunction<PipelineEvent>;

function describe(err: ErrorObject | undefined): Rejection {
  if (!err) return { reason: 'invalid_value', message: 'event does not match the contract' };
  const field = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  switch (err.keyword) {
    case 'required':
      return { reason: 'missing_field', message: `missing required field "${err.params.missingProperty}"` };
    case 'additionalProperties':
      return {
        reason: 'unknown_field',
        message: `unknown field "${err.params.additionalProperty}" (contract v${CONTRACT_VERSION} fields: eventId, deviceId, geoId, ts, type, confidence, attrs)`,
      };
    case 'type':
      return field ? { reason: 'wrong_type', message: `field "${field}" must be ${String(err.params.type).replace(',', ' or ')}` } : { reason: 'not_an_object', message: 'an event must be a JSON object' };
    case 'pattern':
      return { reason: 'invalid_value', message: `field "${field}" has characters or a length the contract does not allow (${patternHint(field)})` };
    default:
      return { reason: 'invalid_value', message: `field "${field}" ${err.message}` };
  }
}

function patternHint(field: string): string {
  switch (field) {
    case 'deviceId':
    case 'agentId':
      return `1–${LIMITS.idLength} of A-Z a-z 0-9 . _ -`;
    case 'type':
      return `1–${LIMITS.typeLength} of A-Z a-z 0-9 . _ : -`;
    case 'eventId':
      return 'printable ASCII without spaces, at most 128 characters';
    default:
      return 'see the contract';
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * Date.parse rolls impossible fields over (February 30 becomes March 2, 24:00 the next day,
 * an offset of +24:30 is taken as is), which would count the event on another day: refuse them.
 */
function realCalendar(m: RegExpExecArray): boolean {
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const wall = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  const offsetOk = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  return offsetOk && wall.getUTCFullYear() === y && wall.getUTCMonth() === mo - 1 && wall.getUTCDate() === d && wall.getUTCHours() === h && wall.getUTCMinutes() === mi && wall.getUTCSeconds() === s;
}

/** Event time as epoch milliseconds, or a rejection saying what is wrong with it. */
export function parseTs(ts: number | string, now: number): { ok: true; ms: number } | { ok: false; reason: RejectReason; message: string } {
  let ms: number;
  if (typeof ts === 'number') {
    ms = ts;
    if (ms < LIMITS.minTs) {
      const hint = ms > LIMITS.minTs / 1000 ? '; it looks like seconds, send epoch milliseconds' : '';
      return { ok: false, reason: 'invalid_ts', message: `ts ${ts} is before 2000-01-01${hint}` };
    }
  } else {
    const m = RFC3339.exec(ts);
    if (!m) return { ok: false, reason: 'invalid_ts', message: `ts "${ts}" is neither epoch milliseconds nor RFC 3339 (e.g. 2026-11-25T17:05:00.123Z)` };
    ms = Date.parse(ts);
    if (!Number.isFinite(ms) || ms < LIMITS.minTs || !realCalendar(m)) return { ok: false, reason: 'invalid_ts', message: `ts "${ts}" is not a valid date after 2000-01-01` };
  }
  if (ms > now + LIMITS.maxFutureMs) {
    return { ok: false, reason: 'future_ts', message: `ts is ${Math.round((ms - now) / 1000)} s in the future (more than ${LIMITS.maxFutureMs / 1000} s ahead of this clock); check the camera's clock` };
  }
  return { ok: true, ms };
}

function attrsTooLarge(attrs: Record<string, unknown> | undefined): Rejection | undefined {
  if (attrs === undefined) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(attrs));
  return bytes > LIMITS.attrsBytes ? { reason: 'attrs_too_large', message: `attrs is ${bytes} bytes serialised; the limit is ${LIMITS.attrsBytes}` } : undefined;
}

/** A camera event as received, normalised: ts in epoch ms. eventId may still be absent. */
export type NormalizedCameraEvent = Omit<CameraEvent, 'ts'> & { ts: number };

export function checkCameraEvent(input: unknown, now = Date.now()): Checked<NormalizedCameraEvent> {
  if (!checkCamera(input)) return { ok: false, ...describe(checkCamera.errors?.[0]) };
  const ts = parseTs(input.ts, now);
  if (!ts.ok) return ts;
  const big = attrsTooLarge(input.attrs);
  if (big) return { ok: false, ...big };
  // Field by field, not `{ ...input, ts }`: a spread cost more than the schema check.
  const event: NormalizedCameraEvent = { deviceId: input.deviceId, geoId: input.geoId, ts: ts.ms, type: input.type };
  if (input.eventId !== undefined) event.eventId = input.eventId;
  if (input.confidence !== undefined) event.confidence = input.confidence;
  if (input.attrs !== undefined) event.attrs = input.attrs;
  return { ok: true, event };
}

export function checkPipelineEvent(input: unknown, now = Date.now()): Checked<PipelineEvent> {
  if (!checkPipeline(input)) return { ok: false, ...describe(checkPipeline.errors?.[0]) };
  const ts = parseTs(input.ts, now);
  if (!ts.ok) return ts;
  const big = attrsTooLarge(input.attrs);
  if (big) return { ok: false, ...big };
  return { ok: true, event: input };
}

/**
 * The stable id of an event, namespaced by device so two cameras' ids never collide:
 * `deviceId:cameraId` when the camera gave one, otherwise `deviceId#<128-bit digest>` of
 * (deviceId, geoId, ts, type), so that a camera's retry of the same event gets the same id.
 * The separators cannot appear in a deviceId, so the two forms never collide either.
 */
export function stableEventId(e: NormalizedCameraEvent): string {
  if (e.eventId !== undefined) return `${e.deviceId}:${e.eventId}`;
  // crypto.hash, one call: a Hash object per event cost the agent three times as much (1.7 against 0.55 µs).
  const digest = hash('sha256', `${e.deviceId}\0${e.geoId}\0${e.ts}\0${e.type}`, 'hex');
  return `${e.deviceId}#${digest.slice(0, 32)}`;
}

/** MQTT topic an agent publishes to; the bridge's ACL allows an agent only its own. */
export function agentTopic(agentId: string): string {
  return `vcam/v${CONTRACT_VERSION}/agents/${agentId}/events`;
}

/** The MQTT payload: one agent's batch of pipeline events. */
export interface AgentBatch {
  v: typeof CONTRACT_VERSION;
  agentId: string;
  events: PipelineEvent[];
}
