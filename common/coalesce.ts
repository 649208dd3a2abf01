import { sleep } from './retry.js';

/**
 * Group writing: while one write is in flight, new items wait; when it ends, everything waiting
 * (up to `maxWeight`) goes out in the next write. With `lingerMs`, a write that would go out
 * lighter than `maxWeight` first waits that long for company (Kafka's linger.ms). With `paceMs`,
 * a write that would go out lighter than `maxWeight` starts no sooner than that after the
 * previous one started: under load, fewer and larger writes (each write has a fixed cost), while
 * an item arriving after a quiet spell goes out at once. Each caller
 * resolves when the write that carried its item succeeded, or rejects with that write's error.
 * Used by the bridge's Kafka producer and the single-node hand-off, the same idea as the agent's batching.
 */
export class Coalescer<T> {
  private pending: { item: T; resolve: () => void; reject: (e: Error) => void }[] = [];
  private busy = false;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly weight: (item: T) => number,
    private readonly maxWeight: number,
    private readonly lingerMs = 0,
    private readonly paceMs = 0,
  ) {}

  /** When the last write started (ms), for pacing. */
  private lastStart = -Infinity;

  push(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  /** Fails every waiting item (on shutdown). */
  rejectAll(err: Error): void {
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  private pendingWeight(): number {
    let w = 0;
    for (const p of this.pending) w += this.weight(p.item);
    return w;
  }

  private async drain(): Promise<void> {
    this.busy = true;
    while (this.pending.length > 0) {
      if (this.lingerMs > 0 && this.pendingWeight() < this.maxWeight) await sleep(this.lingerMs);
      const paced = this.lastStart + this.paceMs - Date.now();
      if (paced > 0 && this.pendingWeight() < this.maxWeight) await sleep(paced);
      this.lastStart = Date.now();
      let w = 0;
      let i = 0;
      // A single item heavier than the limit still goes, alone.
      while (i < this.pending.length && (i === 0 || w < this.maxWeight)) w += this.weight(this.pending[i++]!.item);
      const group = this.pending.splice(0, i);
      try {
        await this.write(group.map((g) => g.item));
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err as Error);
      }
    }
    this.busy = false;
  }
}
