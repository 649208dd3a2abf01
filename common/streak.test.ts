/** Background failures are counted each time and logged once per streak. */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createRegistry } from './metrics.js';
import { taskStreaks } from './streak.js';

describe('taskStreaks', () => {
  it('counts every failure, logs the first of a streak and its end, and shares one counter between callers', async () => {
    const lines: { msg: string; task: string; failures?: number }[] = [];
    const registry = createRegistry({ component: 'test' });
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const flush = taskStreaks(registry, log, 'processor')('flush');
    const geo = taskStreaks(registry, log, 'processor')('geo_refresh');
    for (let i = 0; i < 5; i++) flush.failed(new Error('ClickHouse unreachable'));
    flush.ok();
    flush.ok();
    flush.failed(new Error('again'));
    geo.failed(new Error('no table'));
    expect(lines.map((l) => `${l.task}: ${l.msg}${l.failures ? ` (${l.failures})` : ''}`)).toEqual([
      'flush: flush failed; it will be retried (logged once until it succeeds)',
      'flush: flush works again (5)',
      'flush: flush failed; it will be retried (logged once until it succeeds)',
      'geo_refresh: geo_refresh failed; it will be retried (logged once until it succeeds)',
    ]);
    const text = await registry.metrics();
    expect(text).toContain('vcam_processor_task_failures_total{task="flush",component="test"} 6');
    expect(text).toContain('vcam_processor_task_failures_total{task="geo_refresh",component="test"} 1');
  });
});
