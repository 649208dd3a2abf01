/** The embedded ClickHouse server and the vcam schema. */
export { ClickHouseServer, type ClickHouseServerOptions } from './server.js';
export { secretPath } from './cli.js';
export { migrate, MIGRATIONS, DEFAULT_RETENTION, type Retention } from './schema.js';
export { parseGeoCsv, loadGeo, type GeoRow } from './geo.js';
export { queryRows } from './query.js';
