/**
 * The hot tier of deduplication, one per Kafka partition: every eventId counted in this
 * partition whose event time is at or after `floor`, where floor = (latest counted ts) − horizon.
 * Within that range the set is complete, so a miss means "new"; below it the caller must ask
 * the cold tier (the raw events table). Memory is bounded by the horizon: ids are kept in
 * one bucket per minute of event time and whole buckets are dropped as the floor rises.
 *
 * An id is kept as a 32-bit fingerprint, not as its string: 5 to 11 bytes per id (tables at most
 * three quarters full, doubled as they grow) instead of about 90, so a 10-minute horizon at
 * 20,000 events/s (12 M ids) takes about 85 MB instead of 1.1 GB (docs/performance.md).
 * A miss is exact. A fingerprint can match another id's, so a hit is settled by the ids counted
 * in the last few seconds, kept as strings (where a retry's original almost always is), and
 * otherwise by the cold tier (docs/architecture.md, "Deduplication").
 */
const BUCKET_MS = 60_000;
/** Ids counted within this long (to twice as long) are kept as strings too. */
const RECENT_MS = 5_000;

/** What the hot tier knows of an id at an event time it covers. */
export type HotAnswer = 'new' | 'counted' | 'ask';
/** Slots of a new bucket's table; it doubles when three quarters are taken. */
const INITIAL_SLOTS = 1 << 12;

/** FNV-1a over the id's UTF-16 code units; 0 marks an empty slot, so it becomes 1. */
function fingerprint(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** An open-addressing set of fingerprints (linear probing). */
class Fingerprints {
  private slots = new Uint32Array(INITIAL_SLOTS);
  size = 0;

  has(fp: number): boolean {
    const mask = this.slots.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === fp) return true;
      if (s === 0) return false;
    }
  }

  /** False when it was already there. */
  add(fp: number): boolean {
    if ((this.size + 1) * 4 > this.slots.length * 3) this.grow();
    const mask = this.slots.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === fp) return false;
      if (s === 0) {
        this.slots[i] = fp;
        this.size++;
        return true;
      }
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.size = 0;
    for (const fp of old) if (fp !== 0) this.add(fp);
  }
}

export class HotSet {
  private readonly buckets = new Map<number, Fingerprints>();
  /** Ids counted lately (id → its minute), in two generations swapped every RECENT_MS. */
  private young = new Map<string, number>();
  private old = new Map<string, number>();
  private youngSince: number;
  private maxTs = -Infinity;
  /** Distinct fingerprints held (ids whose fingerprints coincide count once). */
  size = 0;
  /**
   * The set is only known complete from here on: a rebuild reads the counted events back to a
   * point, and an empty set has seen nothing. Below it, the cold tier answers.
   */
  coveredFrom = -Infinity;

  constructor(
    readonly horizonMs: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.youngSince = clock();
  }

  /** Event times at or above this are answered here; below it, by the cold tier. */
  get floor(): number {
    return Math.max(this.maxTs - this.horizonMs, this.coveredFrom);
  }

  covers(ts: number): boolean {
    return ts >= this.floor;
  }

  /**
   * Where `covers(ts)`: `new` and `counted` are exact; `ask` (a fingerprint hit on an id not
   * counted lately) only the cold tier can settle.
   */
  answer(eventId: string, ts: number): HotAnswer {
    const key = Math.floor(ts / BUCKET_MS);
    if (!this.buckets.get(key)?.has(fingerprint(eventId))) return 'new';
    return this.young.get(eventId) === key || this.old.get(eventId) === key ? 'counted' : 'ask';
  }

  /** An id this partition has just counted. */
  add(eventId: string, ts: number): void {
    this.load(eventId, ts);
    this.young.set(eventId, Math.floor(ts / BUCKET_MS));
  }

  /** An id counted earlier (a rebuild): held by its fingerprint only. */
  load(eventId: string, ts: number): void {
    const key = Math.floor(ts / BUCKET_MS);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new Fingerprints()));
    if (bucket.add(fingerprint(eventId))) this.size++;
    if (ts > this.maxTs) this.maxTs = ts;
  }

  /** Raises the latest counted event time without an id (used when rebuilding). */
  observe(ts: number): void {
    if (ts > this.maxTs) this.maxTs = ts;
  }

  /** Drops buckets wholly below the floor, and the older generation of recent ids when due. Call between chunks, never inside one. */
  evict(): void {
    const now = this.clock();
    if (now - this.youngSince >= RECENT_MS) {
      this.old = this.young;
      this.young = new Map();
      this.youngSince = now;
    }
    const below = Math.floor((this.maxTs - this.horizonMs) / BUCKET_MS);
    for (const [key, bucket] of this.buckets) {
      if (key < below) {
        this.size -= bucket.size;
        this.buckets.delete(key);
      }
    }
  }
}
