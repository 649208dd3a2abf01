/** A device that sent events in the last day but none for longer than `silentAfterMs` of event time. */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Rule } from './book.js';

export function deviceSilentRule(client: ClickHouseClient, o: { silentAfterMs: number }): Rule {
  return {
    kinds: ['device_silent'],
    async evaluate(now) {
      const rows = await (
        await client.query({
          query: `SELECT device_id, toUnixTimestamp(max(bucket)) AS last FROM vcam.device_1m
                  WHERE bucket >= toDateTime({day:UInt32}) AND events > 0
                  GROUP BY device_id HAVING last < {silent:UInt32}`,
          query_params: { day: Math.floor(now / 1000) - 86_400, silent: Math.floor((now - o.silentAfterMs) / 1000) - 60 },
          format: 'JSONEachRow',
        })
      ).json<{ device_id: string; last: number }>();
      return rows.map((r) => ({
        kind: 'device_silent',
        subject: `device:${r.device_id}`,
        severity: 'warning' as const,
        message: `device ${r.device_id} silent since ${new Date(Number(r.last) * 1000 + 60_000).toISOString()}`,
      }));
    },
  };
}
