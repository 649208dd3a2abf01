/**
 * The hot tier of deduplication, one per Kafka partition: every eventId counted in this
 * partition whose event time is at or after `floor`, where floor = (latest counted ts) − horizon.
 * Within that range the set is complete, so a miss means "new"; below it the caller must ask
 * the cold tier (the raw events table). Memory is bounded by the horizon: ids are kept in
 * one bucket per minute of event time and whole buckets are dropped as the floor rises.
 */
const BUCKET_MS = 60_000;

export class HotSet {
  private readonly buckets = new Map<number, Set<string>>();
  private maxTs = -Infinity;
  size = 0;
  /**
   * The set is only known complete from here on: a rebuild reads the counted events back to a
   * point, and an empty set has seen nothing. Below it, the cold tier answers.
   */
  coveredFrom = -Infinity;

  constructor(readonly horizonMs: number) {}

  /** Event times at or above this are answered here; below it, by the cold tier. */
  get floor(): number {
    return Math.max(this.maxTs - this.horizonMs, this.coveredFrom);
  }

  covers(ts: number): boolean {
    return ts >= this.floor;
  }

  has(eventId: string, ts: number): boolean {
    return this.buckets.get(Math.floor(ts / BUCKET_MS))?.has(eventId) ?? false;
  }

  add(eventId: string, ts: number): void {
    const key = Math.floor(ts / BUCKET_MS);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new Set()));
    if (!bucket.has(eventId)) {
      bucket.add(eventId);
      this.size++;
    }
    if (ts > this.maxTs) this.maxTs = ts;
  }

  /** Raises the latest counted event time without an id (used when rebuilding). */
  observe(ts: number): void {
    if (ts > this.maxTs) this.maxTs = ts;
  }

  /** Drops buckets wholly below the floor. Call between chunks, never inside one. */
  evict(): void {
    const below = Math.floor((this.maxTs - this.horizonMs) / BUCKET_MS);
    for (const [key, bucket] of this.buckets) {
      if (key < below) {
        this.size -= bucket.size;
        this.buckets.delete(key);
      }
    }
  }
}
