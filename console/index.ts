/** vconsole's public surface: the interactive console and the snapshot it shows. */
export { startConsole, hasTerminal } from './cli.js';
export { takeSnapshot, geoDetail, acknowledge, type Snapshot, type SnapshotOptions } from './snapshot.js';
