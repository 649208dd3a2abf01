/** The geo table's re-check against the real engine: a failing re-check is reported, not swallowed. */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../common/metrics.js';
import { taskStreaks } from '../common/streak.js';
import { waitFor } from '../test/helpers/brokers.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { GeoTable } from './geo.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(() => ch?.stop());

describe('GeoTable.watch', () => {
  it('keeps the loaded names while re-checks fail, counts the failures and logs the streak once, and reloads when the table is back', async () => {
    await ch.client.insert({ table: 'vcam.geo', values: [{ geo_id: 7, geo_name: 'Harbour', region: 'east', loaded_at: '2026-12-01 00:00:00.000' }], format: 'JSONEachRow' });
    const lines: { msg: string }[] = [];
    const registry = createRegistry({ component: 'test' });
    const geo = new GeoTable(ch.client);
    await geo.watch(50, undefined, taskStreaks(registry, pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }), 'processor')('geo_refresh'));
    try {
      expect(geo.current.get(7)?.name).toBe('Harbour');
      await ch.client.command({ query: 'RENAME TABLE vcam.geo TO vcam.geo_away' });
      const failures = async () => Number(/task="geo_refresh"[^}]*} (\d+)/.exec(await registry.metrics())?.[1] ?? 0);
      await waitFor(async () => (await failures()) >= 3, 10_000, 'failed re-checks counted');
      expect(geo.current.get(7)?.name).toBe('Harbour');
      await ch.client.command({ query: 'RENAME TABLE vcam.geo_away TO vcam.geo' });
      await waitFor(() => lines.some((l) => l.msg.includes('works again')), 10_000, 'the streak to end');
      expect(lines.map((l) => l.msg)).toEqual(['geo_refresh failed; it will be retried (logged once until it succeeds)', 'geo_refresh works again']);
    } finally {
      geo.stop();
    }
  });
});
