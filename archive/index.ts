/** The raw-event archive: a Delta Lake table fed from ClickHouse, exactly once. */
export { Archiver, APP_ID, type BatchResult } from './archiver.js';
export { ARCHIVE_SCHEMA, PARTITION_COLUMN } from './files.js';
export { DeltaLog, type Snapshot } from './delta.js';
export { startArchiveService, ARCHIVE_DEFAULTS, type ArchiveService } from './service.js';
