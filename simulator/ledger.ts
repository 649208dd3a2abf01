/**
 * The simulator's ground truth: what a correct pipeline must show. Counted as events are
 * generated, from how they were made (see generator.ts for why every "new" event has an
 * eventId no other new event has), never from what the pipeline reports.
 */
import type { Burst } from './scenario.js';

export interface LedgerJson {
  version: 1;
  seed: number;
  startedAt: number;
  endedAt: number;
  unique: number;
  sent: Ledger['sent'];
  malformed: Ledger['malformed'];
  /** geoId → minute (epoch seconds) → distinct events. */
  perGeoMinute: Record<string, Record<string, number>>;
  perDevice: Record<string, number>;
  bursts: Burst[];
}

export class Ledger {
  readonly perGeoMinute = new Map<number, Map<number, number>>();
  readonly perDevice = new Map<string, number>();
  unique = 0;
  readonly sent = { total: 0, new: 0, retries: 0, oldResends: 0, late: 0, outOfOrder: 0, burstExtra: 0, malformed: 0 };
  /** Malformed events a camera sent (the agent must reject each) and malformed publishes (each one dead letter). */
  readonly malformed = { rejectedByAgent: 0, deadLetters: 0, byDefect: {} as Record<string, number> };
  bursts: Burst[] = [];
  startedAt = 0;
  endedAt = 0;

  constructor(readonly seed: number) {}

  countNew(geoId: number, deviceId: string, tsMs: number): void {
    const minute = Math.floor(tsMs / 60_000) * 60;
    let m = this.perGeoMinute.get(geoId);
    if (!m) this.perGeoMinute.set(geoId, (m = new Map()));
    m.set(minute, (m.get(minute) ?? 0) + 1);
    this.perDevice.set(deviceId, (this.perDevice.get(deviceId) ?? 0) + 1);
    this.unique++;
  }

  countMalformed(defect: string, where: 'agent' | 'dlq'): void {
    this.sent.malformed++;
    this.sent.total++;
    if (where === 'agent') this.malformed.rejectedByAgent++;
    else this.malformed.deadLetters++;
    this.malformed.byDefect[defect] = (this.malformed.byDefect[defect] ?? 0) + 1;
  }

  /** Distinct events per geo, summed over minutes. */
  perGeo(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [g, m] of this.perGeoMinute)
      out.set(
        g,
        [...m.values()].reduce((a, b) => a + b, 0),
      );
    return out;
  }

  toJSON(): LedgerJson {
    const perGeoMinute: LedgerJson['perGeoMinute'] = {};
    for (const [g, m] of this.perGeoMinute) perGeoMinute[g] = Object.fromEntries(m);
    return {
      version: 1,
      seed: this.seed,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      unique: this.unique,
      sent: this.sent,
      malformed: this.malformed,
      perGeoMinute,
      perDevice: Object.fromEntries(this.perDevice),
      bursts: this.bursts,
    };
  }

  static fromJSON(j: LedgerJson): Ledger {
    if (j?.version !== 1) throw new Error('not a vcam ledger (version 1)');
    const l = new Ledger(j.seed);
    Object.assign(l.sent, j.sent);
    Object.assign(l.malformed, j.malformed);
    l.unique = j.unique;
    l.startedAt = j.startedAt;
    l.endedAt = j.endedAt;
    l.bursts = j.bursts;
    for (const [g, m] of Object.entries(j.perGeoMinute)) l.perGeoMinute.set(Number(g), new Map(Object.entries(m).map(([k, v]) => [Number(k), v])));
    for (const [d, n] of Object.entries(j.perDevice)) l.perDevice.set(d, n);
    return l;
  }
}
