/** A counting gate: bounds the events in flight; waiters are served in arrival order. */
export class Gate {
  used = 0;
  private readonly waiters: { n: number; go: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** A request larger than the capacity is let through alone, so it cannot wait forever. */
  acquire(n: number): Promise<void> {
    if (this.waiters.length === 0 && (this.used + n <= this.capacity || this.used === 0)) {
      this.used += n;
      return Promise.resolve();
    }
    return new Promise((go) => this.waiters.push({ n, go }));
  }

  release(n: number): void {
    this.used -= n;
    while (this.waiters.length > 0) {
      const next = this.waiters[0]!;
      if (this.used + next.n > this.capacity && this.used > 0) break;
      this.waiters.shift();
      this.used += next.n;
      next.go();
    }
  }
}
