/** The simulated fleet's geos and their reference CSV (what `vcam geo load` reads). */
import type { ClickHouseClient } from '@clickhouse/client';
import { loadGeo, parseGeoCsv } from '../clickhouse/index.js';
import { pick, seededRng } from './random.js';

export interface SimGeo {
  geoId: number;
  name: string;
  region: string;
}

const PLACES = ['Harbour', 'Old Town', 'Station', 'Airport', 'Market', 'Stadium', 'Campus', 'Riverside', 'Tunnel', 'Bridge', 'Depot', 'Plaza', 'Mall', 'Hospital', 'Ring Road', 'Park'];
const CITIES = ['Lisbon', 'Porto', 'Madrid', 'Lyon', 'Milan', 'Oslo', 'Gdansk', 'Vienna', 'Dublin', 'Ghent', 'Turin', 'Bergen'];
const REGIONS = ['eu-west', 'eu-south', 'eu-north', 'eu-central'];

/** Geo ids start at 100 so a geo id is never mistaken for an index in the output. */
export function simGeos(count: number, seed: number): SimGeo[] {
  const rng = seededRng(seed ^ 0x9e0);
  return Array.from({ length: count }, (_, i) => ({
    geoId: 100 + i,
    name: `${pick(CITIES, rng)} ${PLACES[i % PLACES.length]} ${Math.floor(i / PLACES.length) + 1}`,
    region: REGIONS[i % REGIONS.length]!,
  }));
}

export function geoCsv(geos: readonly SimGeo[]): string {
  return `geoId,geoName,region\n${geos.map((g) => `${g.geoId},${g.name},${g.region}`).join('\n')}\n`;
}

/** Loads the geos into the reference table through the same CSV parser `vcam geo load` uses. */
export async function loadSimGeos(client: ClickHouseClient, geos: readonly SimGeo[], source = 'simulated geos'): Promise<void> {
  await loadGeo(client, parseGeoCsv(geoCsv(geos), source));
}
