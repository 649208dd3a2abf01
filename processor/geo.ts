/**
 * The geo reference table (geoId → name, region), broadcast to every processor: loaded into
 * memory from ClickHouse and reloaded when its version (latest loaded_at) changes, so that
 * `vcam geo load` takes effect without a restart.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { TaskStreak } from '../common/streak.js';

export interface GeoInfo {
  name: string;
  region: string;
}

export class GeoTable {
  private map = new Map<number, GeoInfo>();
  private version = '';
  private timer?: NodeJS.Timeout;

  constructor(private readonly client: ClickHouseClient) {}

  get current(): ReadonlyMap<number, GeoInfo> {
    return this.map;
  }

  /** Reloads if the table changed; returns true when it did. */
  async refresh(): Promise<boolean> {
    const [v] = await (await this.client.query({ query: 'SELECT toString(max(loaded_at)) AS v, count() AS n FROM vcam.geo', format: 'JSONEachRow' })).json<{ v: string; n: number }>();
    const version = `${v?.v}/${v?.n}`;
    if (version === this.version) return false;
    const rows = await // The latest load replaces earlier ones whole: a geo missing from it is unknown again.
    (await this.client.query({ query: 'SELECT geo_id, geo_name AS name, region FROM vcam.geo FINAL WHERE loaded_at = (SELECT max(loaded_at) FROM vcam.geo)', format: 'JSONEachRow' })).json<{ geo_id: number; name: string; region: string }>();
    this.map = new Map(rows.map((r) => [Number(r.geo_id), { name: r.name, region: r.region }]));
    this.version = version;
    return true;
  }

  /**
   * Loads now, then re-checks every `everyMs`; `onReload` hears of each change, `streak` of each
   * failed re-check (the last loaded table stays in use meanwhile).
   */
  async watch(everyMs: number, onReload: (geos: number) => void = () => undefined, streak?: TaskStreak): Promise<void> {
    const check = async () => {
      if (await this.refresh()) onReload(this.map.size);
    };
    await check();
    this.timer = setInterval(
      () =>
        void check().then(
          () => streak?.ok(),
          (err: unknown) => streak?.failed(err),
        ),
      everyMs,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
