/**
 * Background work that runs again by itself (a timer's flush, a reload, a status write): a
 * failure must not vanish into `.catch(() => undefined)`, nor flood the log while it lasts.
 * Each failure is counted; the log gets one line when a streak starts and one when it ends.
 */
import type { Logger } from './log.js';
import { Counter, type Registry } from './metrics.js';

export interface TaskStreak {
  failed(err: unknown): void;
  ok(): void;
}

/** Streaks of `component`'s tasks, counted in `vcam_<component>_task_failures_total{task}`. */
export function taskStreaks(registry: Registry, log: Logger, component: string): (task: string) => TaskStreak {
  const name = `vcam_${component}_task_failures_total`;
  const counter =
    (registry.getSingleMetric(name) as Counter<'task'> | undefined) ??
    new Counter({ name, help: `Failures of ${component} background tasks that retry by themselves (flush, geo_refresh, status_write), by task`, labelNames: ['task'], registers: [registry] });
  return (task) => {
    let since: number | undefined;
    let failures = 0;
    return {
      failed(err) {
        counter.inc({ task });
        failures++;
        if (since !== undefined) return;
        since = Date.now();
        log.warn({ task, err: (err as Error)?.message ?? String(err) }, `${task} failed; it will be retried (logged once until it succeeds)`);
      },
      ok() {
        if (since === undefined) return;
        log.info({ task, failures, forMs: Date.now() - since }, `${task} works again`);
        since = undefined;
        failures = 0;
      },
    };
  };
}
