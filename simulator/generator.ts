/**
 * Camera behaviour, as a deterministic function of (scenario, seed, the wall-clock times it is
 * asked at): which camera sends what, and what the ledger must count.
 *
 * Why the ledger needs no set of ids: every new event's eventId is unique by construction.
 * - Events without a camera id get the agent's derived id (deviceId, geoId, ts, type). Per
 *   camera their ts strictly increases, so no two share one.
 * - Events with a camera id (`<camera>-<run>-e<n>`, a per-camera counter within this run)
 *   cannot collide either; late and out-of-order events always carry one, because their ts goes
 *   backwards. The run tag keeps a second run against the same pipeline from reusing ids.
 * Retries and re-sends repeat an earlier event object unchanged, so they get its id again.
 * The ledger test recounts generated events with the agent's own id function to prove this.
 */
import type { CameraEvent } from '../common/contract.js';
import type { SimGeo } from './geos.js';
import type { Ledger } from './ledger.js';
import { seededRng, Zipf, type Rng } from './random.js';
import { LATE_MIN_MS, type Scenario } from './scenario.js';

/** What a simulated camera sends: the contract's camera event. */
export type SimEvent = CameraEvent;

export type Send =
  | { kind: 'event'; agent: number; event: SimEvent }
  /** Malformed at the camera: the agent must reject it with a reason. */
  | { kind: 'bad-event'; agent: number; event: unknown; defect: string }
  /** A malformed publish from a legacy agent straight to the bridge: exactly one dead letter. */
  | { kind: 'bad-publish'; payload: string; defect: string };

const TYPES = ['person', 'vehicle', 'motion', 'face', 'animal'];
const TYPE_WEIGHTS = [0.45, 0.3, 0.15, 0.07, 0.03];
const RING = 20_000;
/** Margin past the hot horizon for "old" re-sends: the processor's floor follows the newest event time. */
const OLD_MARGIN_MS = 60_000;

interface Camera {
  deviceId: string;
  geoId: number;
  agent: number;
  lastTs: number;
  ids: number;
}

export class Generator {
  private readonly rng: Rng;
  private readonly cameras: Camera[];
  private readonly geoZipf: Zipf;
  private readonly geoCameras: number[][];
  private readonly cameraZipf = new Map<number, Zipf>();
  private readonly recent: SimEvent[] = [];
  /** Events kept for re-sending after the processor's hot horizon has passed them. */
  private readonly old: { event: SimEvent; tsMs: number }[] = [];
  private recentAt = 0;
  private oldAt = 0;
  private legacySeq = 0;

  constructor(
    private readonly s: Scenario,
    readonly geos: readonly SimGeo[],
    readonly agentIds: readonly string[],
    readonly legacyAgentId: string,
    private readonly ledger: Ledger,
    /** Distinguishes this run's camera ids from any earlier run's (e.g. its start time in base 36). */
    private readonly runTag: string,
  ) {
    if (s.cameras < geos.length) throw new Error(`need at least one camera per geo (${s.cameras} cameras, ${geos.length} geos)`);
    this.rng = seededRng(s.seed);
    this.geoZipf = new Zipf(geos.length, s.zipf);
    this.geoCameras = geos.map(() => []);
    this.cameras = Array.from({ length: s.cameras }, (_, i) => {
      const g = i % geos.length;
      this.geoCameras[g]!.push(i);
      const agent = i % agentIds.length;
      return { deviceId: `cam-${String(i).padStart(5, '0')}`, geoId: geos[g]!.geoId, agent, lastTs: 0, ids: 0 };
    });
  }

  /** The geos by expected volume, busiest first (bursts go to these, so they are big enough to see). */
  busiestGeoIds(n: number): number[] {
    return this.geos.slice(0, n).map((g) => g.geoId);
  }

  /** A geo's share of ordinary traffic. */
  geoWeight(geoId: number): number {
    return this.geoZipf.weight(this.geos.findIndex((g) => g.geoId === geoId));
  }

  /** `n` camera sends at wall time `now`. */
  next(now: number, n: number): Send[] {
    const out: Send[] = [];
    for (let i = 0; i < n; i++) out.push(this.one(now));
    return out;
  }

  /** `n` extra new events in one geo (a burst). */
  burst(now: number, geoId: number, n: number): Send[] {
    const g = this.geos.findIndex((x) => x.geoId === geoId);
    const out: Send[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.fresh(now, g));
      this.ledger.sent.burstExtra++;
    }
    return out;
  }

  private one(now: number): Send {
    const r = this.rng();
    const s = this.s;
    if (r < s.malformedShare) return this.malformed(now);
    if (r < s.malformedShare + s.retryShare && this.recent.length > 0) {
      const event = this.recent[Math.floor(this.rng() * this.recent.length)]!;
      this.ledger.sent.retries++;
      this.ledger.sent.total++;
      return { kind: 'event', agent: this.agentOf(event), event };
    }
    if (r < s.malformedShare + s.retryShare + s.oldResendShare) {
      const old = this.oldEnough(now);
      if (old) {
        this.ledger.sent.oldResends++;
        this.ledger.sent.total++;
        return { kind: 'event', agent: this.agentOf(old), event: old };
      }
    }
    return this.fresh(now, this.geoZipf.sample(this.rng));
  }

  private fresh(now: number, g: number): Send {
    const cams = this.geoCameras[g]!;
    let z = this.cameraZipf.get(cams.length);
    if (!z) this.cameraZipf.set(cams.length, (z = new Zipf(cams.length, this.s.zipf)));
    const cam = this.cameras[cams[z.sample(this.rng)]!]!;
    const s = this.s;
    const r = this.rng();
    let ts: number;
    let withId: boolean;
    if (r < s.lateShare) {
      ts = now - Math.round(LATE_MIN_MS + this.rng() * Math.max(0, s.lateMaxMs - LATE_MIN_MS));
      withId = true;
      this.ledger.sent.late++;
    } else if (r < s.lateShare + s.outOfOrderShare) {
      ts = now - Math.round(this.rng() * s.outOfOrderMaxMs);
      withId = true;
      this.ledger.sent.outOfOrder++;
    } else {
      ts = Math.max(now, cam.lastTs + 1);
      // A camera sending faster than its clock ticks stamps its own ids instead of running ahead.
      withId = this.rng() < 0.3 || ts > now + 1_000;
      if (withId) ts = now;
      else cam.lastTs = ts;
    }
    // Cameras speak both time formats the contract allows.
    const sentTs = this.rng() < 0.1 ? new Date(ts).toISOString() : ts;
    const type = this.type();
    const confidence = Math.round(this.rng() * 100) / 100;
    // Literals rather than spreads of optional parts: spreading cost the simulator 1–2 µs per event.
    const event: SimEvent = withId
      ? { eventId: `${cam.deviceId}-${this.runTag}-e${++cam.ids}`, deviceId: cam.deviceId, geoId: cam.geoId, ts: sentTs, type, confidence }
      : { deviceId: cam.deviceId, geoId: cam.geoId, ts: sentTs, type, confidence };
    if (this.rng() < 0.2) event.attrs = { zone: String.fromCharCode(65 + Math.floor(this.rng() * 6)) };
    this.ledger.countNew(cam.geoId, cam.deviceId, ts);
    this.ledger.sent.new++;
    this.ledger.sent.total++;
    this.remember(event, ts, now);
    return { kind: 'event', agent: cam.agent, event };
  }

  private remember(event: SimEvent, tsMs: number, now: number): void {
    if (this.recent.length < RING) this.recent.push(event);
    else this.recent[this.recentAt++ % RING] = event;
    // Keep every event already old enough, and a sample of the rest for longer runs.
    if (tsMs < now - this.s.hotHorizonMs - OLD_MARGIN_MS || this.rng() < 0.01) {
      const entry = { event, tsMs };
      if (this.old.length < RING) this.old.push(entry);
      else this.old[this.oldAt++ % RING] = entry;
    }
  }

  private oldEnough(now: number): SimEvent | undefined {
    const limit = now - this.s.hotHorizonMs - OLD_MARGIN_MS;
    // A few tries: the pool mixes old and recent entries.
    for (let i = 0; i < 4 && this.old.length > 0; i++) {
      const e = this.old[Math.floor(this.rng() * this.old.length)]!;
      if (e.tsMs < limit) return e.event;
    }
    return undefined;
  }

  private agentOf(e: SimEvent): number {
    return this.cameras[Number(e.deviceId.slice(4))]!.agent;
  }

  private type(): string {
    let u = this.rng();
    for (let i = 0; i < TYPES.length; i++) if ((u -= TYPE_WEIGHTS[i]!) < 0) return TYPES[i]!;
    return TYPES[0]!;
  }

  private malformed(now: number): Send {
    const cam = this.cameras[Math.floor(this.rng() * this.cameras.length)]!;
    const good = { deviceId: cam.deviceId, geoId: cam.geoId, ts: now, type: 'person' };
    if (this.rng() < 0.5) {
      const defects: [string, unknown][] = [
        ['missing_device', { geoId: cam.geoId, ts: now, type: 'person' }],
        ['geo_not_a_number', { ...good, geoId: 'north-gate' }],
        ['future_ts', { ...good, ts: now + 3_600_000 }],
        ['confidence_out_of_range', { ...good, confidence: 7 }],
        ['not_an_object', 'person detected'],
      ];
      const [defect, event] = defects[Math.floor(this.rng() * defects.length)]!;
      this.ledger.countMalformed(defect, 'agent');
      return { kind: 'bad-event', agent: cam.agent, event, defect };
    }
    const agentId = this.legacyAgentId;
    // Every payload is distinct: a dead letter's identity is its agent and bytes (a redelivered
    // publish is the same dead letter), so two equal payloads would count as one.
    const event = { eventId: `${cam.deviceId}-legacy-${this.runTag}-${++this.legacySeq}`, ...good, agentId, seq: 1, receivedAt: now };
    const defects: [string, string][] = [
      ['truncated_json', JSON.stringify({ v: 1, agentId, events: [event] }).slice(0, -5)],
      ['event_without_geo', JSON.stringify({ v: 1, agentId, events: [{ ...event, geoId: undefined }] })],
      ['unknown_payload_version', JSON.stringify({ v: 9, agentId, events: [event] })],
    ];
    const [defect, payload] = defects[Math.floor(this.rng() * defects.length)]!;
    this.ledger.countMalformed(defect, 'dlq');
    return { kind: 'bad-publish', payload, defect };
  }
}
