/**
 * One chunk of one partition through validate → deduplicate → join → aggregate, as a pure
 * function of (the chunk's messages, the hot tier's answers as it stood before the chunk, the
 * cold tier's answer for offsets before the chunk, the geo table). The same inputs always give the same
 * rows: that is what lets a replayed chunk be written again under the same dedup tokens.
 */
import { checkPipelineEvent, storableTime, type PipelineEvent, type RejectReason } from '../common/contract.js';
import type { HotAnswer, HotSet } from './dedup.js';
import type { GeoInfo } from './geo.js';

export interface ChunkMessage {
  offset: bigint;
  /** Kafka message timestamp (ms): the deterministic "now" of this message. */
  timestamp: number;
  value: Buffer | null;
  /** The value holds one event per line (header `format: ndjson`); otherwise it is one event. */
  ndjson?: boolean;
  /**
   * The event already parsed and validated (single-node: by the bridge, in the same process),
   * so it is not serialised to be parsed again; `value` is then null.
   */
  event?: PipelineEvent;
}

export interface PipelineOptions {
  /** An event is late when it arrives this long after its event time. */
  lateAfterMs: number;
  /** Events older than this (relative to their message timestamp) cannot be deduplicated any more: dead-lettered. */
  maxAgeMs: number;
}

export interface EventRow {
  event_id: string;
  device_id: string;
  geo_id: number;
  geo_name: string;
  region: string;
  ts: number;
  type: string;
  late: boolean;
  confidence: number | null;
  attrs: string;
  agent_id: string;
  agent_seq: number;
  received_at: number;
  kafka_partition: number;
  kafka_offset: string;
}

export interface DeadRow {
  received_at: number;
  agent_id: string;
  reason: RejectReason | 'too_old' | 'invalid_json';
  message: string;
  payload: string;
  kafka_partition: number;
  kafka_offset: string;
}

export interface ChunkResult {
  events: EventRow[];
  dead: DeadRow[];
  geo10s: Map<string, { bucket: number; geo_id: number; events: number; late: number }>;
  geoType1m: Map<string, { bucket: number; geo_id: number; type: string; events: number; late: number }>;
  device1m: Map<string, { bucket: number; device_id: string; geo_id: number; events: number; duplicates: number }>;
  duplicates: number;
  unknownGeo: number;
  late: number;
}

export interface Decoded {
  offset: bigint;
  timestamp: number;
  event?: PipelineEvent;
  dead?: Omit<DeadRow, 'kafka_partition' | 'kafka_offset'>;
}

/** Events a message carries, for sizing chunks: its lines when it is ndjson (empty lines are not events). */
export function eventsIn(m: Pick<ChunkMessage, 'value' | 'ndjson'>): number {
  const v = m.value;
  if (!m.ndjson || !v) return 1;
  let n = 0;
  let start = 0;
  for (let nl = v.indexOf(10); ; nl = v.indexOf(10, start)) {
    const end = nl < 0 ? v.length : nl;
    if (end > start) n++;
    if (nl < 0) return n;
    start = nl + 1;
  }
}

/** Parses and validates each event; invalid ones become dead letters with their reason. */
export function decodeChunk(messages: ChunkMessage[], o: PipelineOptions): Decoded[] {
  const out: Decoded[] = [];
  const now = Date.now();
  for (const m of messages) {
    // Kafka takes any timestamp from a producer. A dead letter dated by one that is no time, or
    // older than the retention, would be lost on insert: it is dated when it is processed instead
    // (its row alone then differs on a replay; the chunk's dedup token still keeps one copy).
    const receivedAt = storableTime(m.timestamp, now, o.maxAgeMs);
    if (m.event) {
      out.push(youngEnough(m, m.event, receivedAt, () => JSON.stringify(m.event), o));
      continue;
    }
    const text = m.value?.toString('utf8') ?? '';
    // Empty lines of an ndjson record are no events; an empty record of one event is a dead letter.
    const lines = m.ndjson ? text.split('\n').filter((l) => l.length > 0) : [text];
    for (const line of lines) out.push(decodeOne(m, line, receivedAt, o));
  }
  return out;
}

function decodeOne(m: ChunkMessage, text: string, receivedAt: number, o: PipelineOptions): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { offset: m.offset, timestamp: m.timestamp, dead: { received_at: receivedAt, agent_id: '', reason: 'invalid_json', message: `not JSON: ${(err as Error).message}`, payload: text } };
  }
  // Validated against the message's own time, so a replay decides exactly as the first run did.
  const checked = checkPipelineEvent(value, m.timestamp);
  const agentId = typeof (value as { agentId?: unknown })?.agentId === 'string' ? (value as { agentId: string }).agentId : '';
  if (!checked.ok) return { offset: m.offset, timestamp: m.timestamp, dead: { received_at: receivedAt, agent_id: agentId, reason: checked.reason, message: checked.message, payload: text } };
  return youngEnough(m, checked.event, receivedAt, () => text, o);
}

/** The event, or a too_old dead letter; `payload` is called only then (single-node has no bytes to keep). */
function youngEnough(m: ChunkMessage, event: PipelineEvent, receivedAt: number, payload: () => string, o: PipelineOptions): Decoded {
  if (event.ts >= m.timestamp - o.maxAgeMs) return { offset: m.offset, timestamp: m.timestamp, event };
  return {
    offset: m.offset,
    timestamp: m.timestamp,
    dead: {
      received_at: receivedAt,
      agent_id: event.agentId,
      reason: 'too_old',
      message: `event time is older than the ${Math.round(o.maxAgeMs / 86_400_000)}-day raw retention; it can no longer be deduplicated`,
      payload: payload(),
    },
  };
}

/**
 * What the hot tier says of each decoded event, asked once per chunk: its answer where it covers
 * the event time, else `ask` (below its floor only the cold tier knows). Dead letters get `new`,
 * which nothing reads.
 */
export function hotAnswers(decoded: Decoded[], hot: HotSet): HotAnswer[] {
  return decoded.map((d) => (!d.event ? 'new' : hot.covers(d.event.ts) ? hot.answer(d.event.eventId, d.event.ts) : 'ask'));
}

/**
 * The events to look up in the raw table: those below the hot tier's floor, and its fingerprint
 * hits on ids not counted lately (rare: a duplicate of an older event, or another id with the
 * same fingerprint).
 */
export function coldCandidates(decoded: Decoded[], answers: HotAnswer[]): PipelineEvent[] {
  return decoded.flatMap((d, i) => (d.event && answers[i] === 'ask' ? [d.event] : []));
}

export function processChunk(partition: number, decoded: Decoded[], answers: HotAnswer[], coldSeen: Set<string>, geo: ReadonlyMap<number, GeoInfo>, o: PipelineOptions): ChunkResult {
  const r: ChunkResult = { events: [], dead: [], geo10s: new Map(), geoType1m: new Map(), device1m: new Map(), duplicates: 0, unknownGeo: 0, late: 0 };
  const seen = new Set<string>();
  // An ndjson record's events share its offset: its string is made once.
  let offsetOf = -1n;
  let offset = '';
  for (let i = 0; i < decoded.length; i++) {
    const d = decoded[i]!;
    if (d.offset !== offsetOf) {
      offsetOf = d.offset;
      offset = d.offset.toString();
    }
    if (d.dead) {
      r.dead.push({ ...d.dead, kafka_partition: partition, kafka_offset: offset });
      continue;
    }
    const e = d.event!;
    const minute = Math.floor(e.ts / 60_000) * 60;
    const answer = answers[i];
    const duplicate = seen.has(e.eventId) || answer === 'counted' || (answer === 'ask' && coldSeen.has(e.eventId));
    const dev = bump(r.device1m, `${e.deviceId}\0${e.geoId}\0${minute}`, () => ({ bucket: minute, device_id: e.deviceId, geo_id: e.geoId, events: 0, duplicates: 0 }));
    if (duplicate) {
      dev.duplicates++;
      r.duplicates++;
      continue;
    }
    seen.add(e.eventId);
    const late = d.timestamp - e.ts > o.lateAfterMs;
    const info = geo.get(e.geoId);
    if (!info) r.unknownGeo++;
    if (late) r.late++;
    r.events.push({
      event_id: e.eventId,
      device_id: e.deviceId,
      geo_id: e.geoId,
      geo_name: info?.name ?? '',
      region: info?.region ?? '',
      ts: e.ts,
      type: e.type,
      late,
      confidence: e.confidence ?? null,
      attrs: e.attrs ? JSON.stringify(e.attrs) : '',
      agent_id: e.agentId,
      agent_seq: e.seq,
      received_at: e.receivedAt,
      kafka_partition: partition,
      kafka_offset: offset,
    });
    dev.events++;
    const tenS = Math.floor(e.ts / 10_000) * 10;
    const g = bump(r.geo10s, `${e.geoId}\0${tenS}`, () => ({ bucket: tenS, geo_id: e.geoId, events: 0, late: 0 }));
    g.events++;
    const gt = bump(r.geoType1m, `${e.geoId}\0${e.type}\0${minute}`, () => ({ bucket: minute, geo_id: e.geoId, type: e.type, events: 0, late: 0 }));
    gt.events++;
    if (late) {
      g.late++;
      gt.late++;
    }
  }
  return r;
}

function bump<T>(m: Map<string, T>, key: string, make: () => T): T {
  let v = m.get(key);
  if (!v) m.set(key, (v = make()));
  return v;
}
