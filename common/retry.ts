/**
 * One retry policy for the whole code base (kafkajs' shape): exponential backoff with full
 * jitter, capped, optionally bounded by attempts or total time. Reconnects, produces and
 * ClickHouse writes all go through here instead of hand-rolled loops.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 0..1: share of each delay that is randomised, so a fleet does not reconnect in lockstep. */
  jitter?: number;
}

export function backoffDelay(attempt: number, o: BackoffOptions = {}, random = Math.random): number {
  const initial = o.initialMs ?? 100;
  const max = o.maxMs ?? 30_000;
  const factor = o.factor ?? 2;
  const jitter = o.jitter ?? 0.5;
  const base = Math.min(max, initial * factor ** Math.max(0, attempt));
  return Math.round(base * (1 - jitter) + base * jitter * random());
}

export interface RetryOptions extends BackoffOptions {
  retries?: number;
  maxRetryTimeMs?: number;
  signal?: AbortSignal;
  /** Defaults to the error's own `retriable` flag, treating unknown errors as retriable. */
  isRetriable?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const started = Date.now();
  const retries = o.retries ?? Infinity;
  const canRetry = o.isRetriable ?? ((err: unknown) => (err as { retriable?: boolean })?.retriable !== false);
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const delay = backoffDelay(attempt, o);
      const outOfTime = o.maxRetryTimeMs !== undefined && Date.now() - started + delay > o.maxRetryTimeMs;
      if (attempt >= retries || outOfTime || !canRetry(err) || o.signal?.aborted) throw err;
      o.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, o.signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
