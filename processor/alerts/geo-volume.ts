/**
 * Per-geo spike or drop: the last complete minute (complete = its end plus the lateness bound
 * has passed) against the mean of the minutes before it. Fires a spike when the minute holds at
 * least `minVolume` events and more than `ratio` × the baseline; a drop when the baseline holds
 * at least `minVolume` and the minute less than baseline ÷ `ratio`.
 *
 * Nothing fires unless a processor was running when the baseline began (a `pipeline_status`
 * row by 15 s into it; status rows come every 10 s): otherwise a freshly started pipeline compares its first minutes
 * with a past that holds only late stragglers, and calls every busy geo a spike.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Finding, Rule } from './book.js';

export interface GeoVolumeOptions {
  ratio: number;
  minVolume: number;
  baselineMinutes: number;
  lateAfterMs: number;
}

export function geoVolumeRule(client: ClickHouseClient, o: GeoVolumeOptions): Rule {
  return {
    kinds: ['geo_spike', 'geo_drop'],
    async evaluate(now) {
      const minute = Math.floor((now - o.lateAfterMs) / 60_000) * 60 - 60;
      const rows = await (
        await client.query({
          query: `SELECT geo_id,
                    sumIf(events, bucket = toDateTime({m:UInt32})) AS current,
                    sumIf(events, bucket < toDateTime({m:UInt32})) / {n:UInt32} AS baseline,
                    (SELECT count() FROM vcam.pipeline_status
                      WHERE at >= toDateTime({from:UInt32}) - INTERVAL 10 MINUTE AND at <= toDateTime({from:UInt32}) + INTERVAL 15 SECOND) AS warm
                  FROM vcam.geo_type_1m
                  WHERE bucket >= toDateTime({from:UInt32}) AND bucket <= toDateTime({m:UInt32})
                  GROUP BY geo_id`,
          query_params: { m: minute, n: o.baselineMinutes, from: minute - o.baselineMinutes * 60 },
          format: 'JSONEachRow',
        })
      ).json<{ geo_id: number; current: number; baseline: number; warm: number }>();
      if (!rows.some((r) => Number(r.warm) > 0)) return [];
      const at = new Date(minute * 1000).toISOString().slice(11, 16);
      const findings: Finding[] = [];
      for (const r of rows) {
        const current = Number(r.current);
        const baseline = Number(r.baseline);
        if (current >= o.minVolume && current > baseline * o.ratio) {
          findings.push({
            kind: 'geo_spike',
            subject: `geo:${r.geo_id}`,
            severity: 'warning',
            since: minute * 1000,
            message: `geo ${r.geo_id}: ${current} events in ${at} UTC, ${baseline.toFixed(1)}/min before (×${(current / Math.max(baseline, 1e-9)).toFixed(1)})`,
          });
        } else if (baseline >= o.minVolume && current < baseline / o.ratio) {
          findings.push({ kind: 'geo_drop', subject: `geo:${r.geo_id}`, severity: 'warning', since: minute * 1000, message: `geo ${r.geo_id}: ${current} events in ${at} UTC, ${baseline.toFixed(1)}/min before` });
        }
      }
      return findings;
    },
  };
}
