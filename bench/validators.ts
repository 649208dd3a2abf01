/**
 * Which validator should the contract use? Candidates checking the same camera-event rules:
 * ajv (compiled JSON Schema, what common/contract.ts uses), zod 4, TypeBox's compiler, and a
 * hand-written function. Baseline: JSON.parse of the same event, measured in the same run.
 */
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { z } from 'zod';
import { checkCameraEvent, cameraEventSchema } from '../common/contract.js';
import { Ajv } from 'ajv';
import { opsPerSecond } from './measure.js';

const now = Date.now();
const event = { eventId: 'evt-000123', deviceId: 'cam-0042', geoId: 17, ts: now - 1500, type: 'person', confidence: 0.87, attrs: { zone: 'gate-3' } };
const text = JSON.stringify(event);

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const TYPE = /^[A-Za-z0-9._:-]{1,32}$/;
const EID = /^[\x21-\x7e]{1,128}$/;

const zodSchema = z.strictObject({
  eventId: z.string().regex(EID).optional(),
  deviceId: z.string().regex(ID),
  geoId: z.number().int().min(0).max(4294967295),
  ts: z.union([z.number().int(), z.string().max(40)]),
  type: z.string().regex(TYPE),
  confidence: z.number().min(0).max(1).optional(),
  attrs: z.record(z.string(), z.unknown()).optional(),
});

const tb = TypeCompiler.Compile(
  Type.Object(
    {
      eventId: Type.Optional(Type.String({ pattern: EID.source })),
      deviceId: Type.String({ pattern: ID.source }),
      geoId: Type.Integer({ minimum: 0, maximum: 4294967295 }),
      ts: Type.Union([Type.Integer(), Type.String({ maxLength: 40 })]),
      type: Type.String({ pattern: TYPE.source }),
      confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      attrs: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { maxProperties: 32 })),
    },
    { additionalProperties: false },
  ),
);

const KEYS = new Set(['eventId', 'deviceId', 'geoId', 'ts', 'type', 'confidence', 'attrs']);
function handWritten(e: Record<string, unknown> | null): boolean {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return false;
  for (const k in e) if (!KEYS.has(k)) return false;
  if (e.eventId !== undefined && (typeof e.eventId !== 'string' || !EID.test(e.eventId))) return false;
  if (typeof e.deviceId !== 'string' || !ID.test(e.deviceId)) return false;
  if (typeof e.geoId !== 'number' || !Number.isInteger(e.geoId) || e.geoId < 0 || e.geoId > 4294967295) return false;
  if (!(Number.isInteger(e.ts) || (typeof e.ts === 'string' && e.ts.length <= 40))) return false;
  if (typeof e.type !== 'string' || !TYPE.test(e.type)) return false;
  if (e.confidence !== undefined && (typeof e.confidence !== 'number' || e.confidence < 0 || e.confidence > 1)) return false;
  if (e.attrs !== undefined && (e.attrs === null || typeof e.attrs !== 'object' || Array.isArray(e.attrs))) return false;
  return true;
}

const ajvOnly = new Ajv({ strict: true, allowUnionTypes: true }).compile({ ...cameraEventSchema, $id: undefined });

export function benchValidators(): Record<string, unknown> {
  const candidates: Record<string, () => unknown> = {
    ajv: () => ajvOnly(event) || fail('ajv'),
    zod: () => zodSchema.safeParse(event).success || fail('zod'),
    typebox: () => tb.Check(event) || fail('typebox'),
    handWritten: () => handWritten(event) || fail('handWritten'),
  };
  const baseline = opsPerSecond(() => JSON.parse(text));
  const results: Record<string, { opsPerSec: number; vsJsonParse: number }> = {};
  for (const [name, fn] of Object.entries(candidates)) {
    const ops = opsPerSecond(fn);
    results[name] = { opsPerSec: Math.round(ops), vsJsonParse: round(ops / baseline) };
  }
  const contract = opsPerSecond(() => checkCameraEvent(event, now).ok || fail('contract'));
  return {
    baseline: { name: 'JSON.parse of the same event', opsPerSec: Math.round(baseline) },
    schemaCheckOnly: results,
    contractCheckCameraEvent: { opsPerSec: Math.round(contract), vsJsonParse: round(contract / baseline), note: 'ajv + ts parsing + attrs size, as the agent runs it' },
  };
}

function fail(name: string): never {
  throw new Error(`${name} rejected a valid event`);
}

const round = (x: number) => Math.round(x * 100) / 100;
