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

export interface Geo10sRow {
  bucket: number;
  geo_id: number;
  events: number;
  late: number;
}

export interface GeoType1mRow extends Geo10sRow {
  type: string;
}

export interface Device1mRow {
  bucket: number;
  device_id: string;
  geo_id: number;
  events: number;
  duplicates: number;
}

export interface ChunkResult {
  events: EventRow[];
  dead: DeadRow[];
  /** Aggregate rows, one per key, in the order their keys first occur. */
  geo10s: Geo10sRow[];
  geoType1m: GeoType1mRow[];
  device1m: Device1mRow[];
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
      out.push(youngEnough(m, m.event, receivedAt, undefined, o));
      continue;
    }
    const text = m.value?.toString('utf8') ?? '';
    if (!m.ndjson) {
      out.push(decodeOne(m, text, receivedAt, o));
      continue;
    }
    // Empty lines of an ndjson record are no events; an empty record of one event is a dead letter.
    for (const line of text.split('\n')) if (line.length > 0) out.push(decodeOne(m, line, receivedAt, o));
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
  if (checked.ok) return youngEnough(m, checked.event, receivedAt, text, o);
  const agentId = typeof (value as { agentId?: unknown })?.agentId === 'string' ? (value as { agentId: string }).agentId : '';
  return { offset: m.offset, timestamp: m.timestamp, dead: { received_at: receivedAt, agent_id: agentId, reason: checked.reason, message: checked.message, payload: text } };
}

/** The event, or a too_old dead letter keeping `payload` (single-node has no bytes: the event is serialised then). */
function youngEnough(m: ChunkMessage, event: PipelineEvent, receivedAt: number, payload: string | undefined, o: PipelineOptions): Decoded {
  if (event.ts >= m.timestamp - o.maxAgeMs) return { offset: m.offset, timestamp: m.timestamp, event };
  return {
    offset: m.offset,
    timestamp: m.timestamp,
    dead: {
      received_at: receivedAt,
      agent_id: event.agentId,
      reason: 'too_old',
      message: `event time is older than the ${Math.round(o.maxAgeMs / 86_400_000)}-day raw retention; it can no longer be deduplicated`,
      payload: payload ?? JSON.stringify(event),
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
  const geo10s = new Tally(newGeo10s);
  const geoType1m = new Tally(newGeoType1m);
  const device1m = new Tally(newDevice1m);
  const r: ChunkResult = { events: [], dead: [], geo10s: geo10s.rows, geoType1m: geoType1m.rows, device1m: device1m.rows, duplicates: 0, unknownGeo: 0, late: 0 };
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
    const minute = Math.floor(e.ts / 60_000);
    const answer = answers[i];
    const duplicate = seen.has(e.eventId) || answer === 'counted' || (answer === 'ask' && coldSeen.has(e.eventId));
    const dev = device1m.row(minute, e.geoId, e.deviceId);
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
    const g = geo10s.row(Math.floor(e.ts / 10_000), e.geoId, '');
    const gt = geoType1m.row(minute, e.geoId, e.type);
    g.events++;
    gt.events++;
    if (late) {
      g.late++;
      gt.late++;
    }
  }
  return r;
}

/**
 * Aggregate rows keyed by (bucket number, geoId, a string), found through three maps of those
 * keys: joining them into one string key per event cost more than the rest of the aggregation
 * (docs/performance.md).
 */
class Tally<R> {
  readonly rows: R[] = [];
  private readonly index = new Map<number, Map<number, Map<string, R>>>();

  constructor(private readonly make: (bucket: number, geoId: number, key: string) => R) {}

  row(bucket: number, geoId: number, key: string): R {
    let byGeo = this.index.get(bucket);
    if (!byGeo) this.index.set(bucket, (byGeo = new Map()));
    let byKey = byGeo.get(geoId);
    if (!byKey) byGeo.set(geoId, (byKey = new Map()));
    let row = byKey.get(key);
    if (!row) {
      byKey.set(key, (row = this.make(bucket, geoId, key)));
      this.rows.push(row);
    }
    return row;
  }
}

// Buckets are counted in tens of seconds and in minutes; rows hold them as epoch seconds.
const newGeo10s = (tens: number, geoId: number): Geo10sRow => ({ bucket: tens * 10, geo_id: geoId, events: 0, late: 0 });
const newGeoType1m = (minute: number, geoId: number, type: string): GeoType1mRow => ({ bucket: minute * 60, geo_id: geoId, type, events: 0, late: 0 });
const newDevice1m = (minute: number, geoId: number, deviceId: string): Device1mRow => ({ bucket: minute * 60, device_id: deviceId, geo_id: geoId, events: 0, duplicates: 0 });
