/**
 * The `vcam` database, as versioned migrations. Every statement is idempotent, and applied
 * versions are recorded in `vcam.schema_migrations`, so `vcam migrate` (also run by the
 * processor at startup) can run any number of times, from any component, in any order.
 *
 * Tables that the processor writes carry `non_replicated_deduplication_window`: a retried
 * insert with the same `insert_deduplication_token` is dropped by ClickHouse itself. That is
 * half of the exactly-once argument in docs/architecture.md.
 */
import type { ClickHouseClient } from '@clickhouse/client';

export interface Retention {
  rawDays: number;
  aggregateDays: number;
}

export const DEFAULT_RETENTION: Retention = { rawDays: 30, aggregateDays: 90 };
/** ClickHouse's insert deduplication: the last this many blocks of a table are remembered by their tokens. */
export const DEDUP_WINDOW = 10_000;
const DEDUP = `non_replicated_deduplication_window = ${DEDUP_WINDOW}`;

/** How long chunk records (vcam.chunks, vcam.chunk_rows) are kept: replays, and the archive's look for chunks, reach no further back. */
export const CHUNK_RECORDS_DAYS = 7;
export const CHUNK_RECORDS_KEPT_MS = CHUNK_RECORDS_DAYS * 86_400_000;

/**
 * A filter on vcam.chunks: the chunk parts no plan of archive `{a:String}` holds among the plans
 * `plans` picks (a filter on vcam.archive_chunks). A part is named by its partition and
 * processed_at, as the archiver names a chunk's rows (docs/architecture.md, "The raw-event
 * archive"): numbers match several times faster than token strings on the shared ClickHouse.
 */
export const notInArchive = (plans: string): string => `(kafka_partition, processed_at) NOT IN (SELECT kafka_partition, processed_at FROM vcam.archive_chunks WHERE archive = {a:String} AND ${plans})`;

/** vcam.events' partition (toYYYYMMDD of ts) holding this epoch millisecond. */
const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');

/** Epoch milliseconds as a DateTime64(3) value for JSONEachRow: seconds with a fraction. */
export const dt64 = (ms: number): string => (ms / 1000).toFixed(3);

interface Migration {
  version: number;
  name: string;
  statements: (r: Retention) => string[];
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'raw events, aggregates, geo reference, alerts, pipeline status, dead letters',
    statements: (r) => [
      `CREATE TABLE IF NOT EXISTS vcam.events (
        event_id String, device_id String, geo_id UInt32, geo_name String, region LowCardinality(String),
        ts DateTime64(3, 'UTC'), type LowCardinality(String), late Bool,
        confidence Nullable(Float32), attrs String, agent_id LowCardinality(String), agent_seq UInt64,
        received_at DateTime64(3, 'UTC'), kafka_partition UInt16, kafka_offset UInt64, processed_at DateTime64(3, 'UTC')
      ) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (device_id, ts, event_id)
      TTL toDateTime(ts) + INTERVAL ${r.rawDays} DAY SETTINGS ${DEDUP}`,
      // What the dedup state was rebuilt from until migration 10.
      `CREATE TABLE IF NOT EXISTS vcam.dedup_log (
        kafka_partition UInt16, kafka_offset UInt64, ts DateTime64(3, 'UTC'), event_id String
      ) ENGINE = MergeTree ORDER BY (kafka_partition, ts) TTL toDateTime(ts) + INTERVAL 2 DAY SETTINGS ${DEDUP}`,
      `CREATE TABLE IF NOT EXISTS vcam.geo_10s (
        bucket DateTime('UTC'), geo_id UInt32, events UInt64, late UInt64
      ) ENGINE = SummingMergeTree ORDER BY (geo_id, bucket) TTL bucket + INTERVAL ${r.aggregateDays} DAY SETTINGS ${DEDUP}`,
      `CREATE TABLE IF NOT EXISTS vcam.geo_type_1m (
        bucket DateTime('UTC'), geo_id UInt32, type LowCardinality(String), events UInt64, late UInt64
      ) ENGINE = SummingMergeTree ORDER BY (geo_id, type, bucket) TTL bucket + INTERVAL ${r.aggregateDays} DAY SETTINGS ${DEDUP}`,
      `CREATE TABLE IF NOT EXISTS vcam.device_1m (
        bucket DateTime('UTC'), device_id String, geo_id UInt32, events UInt64, duplicates UInt64
      ) ENGINE = SummingMergeTree ORDER BY (device_id, geo_id, bucket) TTL bucket + INTERVAL ${r.aggregateDays} DAY SETTINGS ${DEDUP}`,
      // Each processed chunk of a partition, recorded before its data is written (see processor/processor.ts and docs/architecture.md).
      `CREATE TABLE IF NOT EXISTS vcam.chunks (
        topic LowCardinality(String), kafka_partition UInt16, start_offset UInt64, end_offset UInt64, written_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(written_at) ORDER BY (topic, kafka_partition, start_offset)`,
      `CREATE TABLE IF NOT EXISTS vcam.geo (
        geo_id UInt32, geo_name String, region LowCardinality(String), loaded_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(loaded_at) ORDER BY geo_id`,
      `CREATE TABLE IF NOT EXISTS vcam.alerts (
        alert_id String, kind LowCardinality(String), subject String, severity LowCardinality(String),
        state Enum8('open' = 1, 'resolved' = 2), opened_at DateTime64(3, 'UTC'), resolved_at Nullable(DateTime64(3, 'UTC')),
        message String, updated_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY alert_id`,
      `CREATE TABLE IF NOT EXISTS vcam.pipeline_status (
        at DateTime64(3, 'UTC'), instance String, kafka_partition Int32, lag UInt64, events_per_s Float64,
        latency_p50_ms Float64, latency_p95_ms Float64, latency_p99_ms Float64
      ) ENGINE = MergeTree ORDER BY (at, instance, kafka_partition) TTL toDateTime(at) + INTERVAL 7 DAY`,
      `CREATE TABLE IF NOT EXISTS vcam.dlq (
        received_at DateTime64(3, 'UTC'), agent_id String, reason LowCardinality(String), message String, payload String,
        kafka_partition UInt16, kafka_offset UInt64
      ) ENGINE = MergeTree ORDER BY (received_at, agent_id) TTL toDateTime(received_at) + INTERVAL ${r.rawDays} DAY SETTINGS ${DEDUP}`,
    ],
  },
  {
    version: 2,
    name: 'single-node hand-off log',
    statements: () => [
      // Single-node mode has no Kafka log to replay from: each chunk's input is written here
      // first, so a chunk cut short by a crash can be redone exactly (processor/local.ts).
      `CREATE TABLE IF NOT EXISTS vcam.handoff_log (
        chunk_start UInt64, chunk_end UInt64, payload String, written_at DateTime64(3, 'UTC')
      ) ENGINE = MergeTree ORDER BY chunk_start TTL toDateTime(written_at) + INTERVAL 2 DAY SETTINGS ${DEDUP}`,
    ],
  },
  {
    version: 3,
    name: 'dead letters name the Kafka topic they were copied from',
    statements: () => [
      // '' for the processor's own dead letters; the DLQ topic for the bridge's (processor/dlq.ts).
      "ALTER TABLE vcam.dlq ADD COLUMN IF NOT EXISTS topic LowCardinality(String) DEFAULT ''",
    ],
  },
  {
    version: 4,
    name: 'alert acknowledgements',
    statements: () => [
      // Apart from vcam.alerts: processors rewrite alert rows, and must not erase an operator's ack.
      `CREATE TABLE IF NOT EXISTS vcam.alert_acks (
        alert_id String, acknowledged_at DateTime64(3, 'UTC'), acknowledged_by String
      ) ENGINE = ReplacingMergeTree(acknowledged_at) ORDER BY alert_id`,
    ],
  },
  {
    version: 5,
    name: 'dead-letter identity',
    statements: () => [
      // Dead letters arrive at least once (an MQTT redelivery after a bridge crash, a producer
      // retry, a rebalance of the copier): the same agent's same bytes are one dead letter, so
      // counts use uniqExact(dlq_id). Computed by ClickHouse, for old rows too.
      'ALTER TABLE vcam.dlq ADD COLUMN IF NOT EXISTS dlq_id UInt64 DEFAULT cityHash64(agent_id, payload)',
    ],
  },
  {
    version: 6,
    name: 'chunks span partitions and keep their rows',
    statements: () => [
      // A chunk's rows, kept so that the next owner of any of its partitions can replay it
      // exactly (processor/writer.ts). Only the last chunk of a partition is ever replayed.
      // The payload is the rows' JSON, gzipped and base64-encoded by the processor.
      `CREATE TABLE IF NOT EXISTS vcam.chunk_rows (
        token String, payload String, written_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(written_at) ORDER BY token TTL toDateTime(written_at) + INTERVAL ${CHUNK_RECORDS_DAYS} DAY`,
      "ALTER TABLE vcam.chunks ADD COLUMN IF NOT EXISTS token String DEFAULT ''",
      // Single-node chunks are replayed from their kept rows too; the input log is not needed.
      'DROP TABLE IF EXISTS vcam.handoff_log',
    ],
  },
  {
    version: 7,
    name: 'chunk records expire with their rows',
    statements: () => [
      // Every recovery reads vcam.chunks with FINAL; without a TTL it grew for ever. Only a
      // partition's last chunk is replayed, and only from its rows, which expire after 7 days
      // (as Kafka's log does, 168 h): a chunk record older than that can replay nothing. A
      // partition idle for longer simply starts from its committed offset, and the cold dedup
      // tier (30 days of raw events) still drops anything counted before.
      `ALTER TABLE vcam.chunks MODIFY TTL toDateTime(written_at) + INTERVAL ${CHUNK_RECORDS_DAYS} DAY`,
    ],
  },
  {
    version: 8,
    name: 'chunks count their deduplication blocks',
    statements: () => [
      // How many entries a chunk's inserts add to a table's insert-deduplication log (the most
      // of any table: vcam.events gets one per day its events span). A replay is safe only while
      // the entries added since its chunk fit in the window (processor/store.ts replayDistance).
      'ALTER TABLE vcam.chunks ADD COLUMN IF NOT EXISTS blocks UInt32 DEFAULT 1',
    ],
  },
  {
    version: 9,
    name: 'the raw-event archive follows chunks',
    statements: () => [
      // The archiver (archive/ledger.ts) copies whole chunks: a chunk is complete in vcam.events
      // when its rows of each partition, found by the chunk's processed_at, number `events`.
      // Records written before this migration have 0: the archive starts after it.
      'ALTER TABLE vcam.chunks ADD COLUMN IF NOT EXISTS events UInt32 DEFAULT 0',
      "ALTER TABLE vcam.chunks ADD COLUMN IF NOT EXISTS processed_at DateTime64(3, 'UTC') DEFAULT 0",
      // Each insert's part holds one processed_at: the archiver's reads skip all other parts.
      'ALTER TABLE vcam.events ADD INDEX IF NOT EXISTS processed_at_range processed_at TYPE minmax GRANULARITY 1',
      // Which chunks each archive batch holds, recorded before its files are written: a batch cut
      // short is redone with the same chunks. Kept longer than chunk records (7 days).
      `CREATE TABLE IF NOT EXISTS vcam.archive_chunks (
        archive String, batch UInt64, token String, kafka_partition UInt16, processed_at DateTime64(3, 'UTC'), events UInt32,
        written_at DateTime64(3, 'UTC'), planned_at DateTime64(3, 'UTC')
      ) ENGINE = MergeTree ORDER BY (archive, batch, token, kafka_partition) TTL toDateTime(planned_at) + INTERVAL 8 DAY SETTINGS ${DEDUP}`,
      // What each committed batch wrote (the Delta log is the truth; this is for lag, metrics and the console).
      `CREATE TABLE IF NOT EXISTS vcam.archive_batches (
        archive String, batch UInt64, version UInt64, rows UInt64, files UInt32, bytes UInt64,
        oldest_written_at DateTime64(3, 'UTC'), committed_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(committed_at) ORDER BY (archive, batch) TTL toDateTime(committed_at) + INTERVAL 90 DAY`,
    ],
  },
  {
    version: 10,
    name: 'the dedup state is rebuilt from vcam.events',
    statements: () => [
      // A processor taking a partition over reads back the ids it counted lately, by partition
      // and time. This projection keeps vcam.events in that order inside each part, so the read
      // needs no second table: vcam.dedup_log cost every chunk a part of its own, about a tenth
      // of the write (docs/performance.md). A rebuild reads at most 36 hours back, so only the
      // last three days' parts are given the projection now; later parts have it as written.
      'ALTER TABLE vcam.events ADD PROJECTION IF NOT EXISTS by_partition (SELECT kafka_partition, kafka_offset, ts, event_id ORDER BY kafka_partition, ts)',
      ...[0, 1, 2].map((d) => `ALTER TABLE vcam.events MATERIALIZE PROJECTION by_partition IN PARTITION ${utcDay(Date.now() - d * 86_400_000)}`),
      // Dropped, not left to expire: a processor of an earlier version still running would
      // rebuild its dedup state from a log nobody writes and count again what it misses. Without
      // the table its writes fail and are retried until it is replaced (docs/operations.md).
      'DROP TABLE IF EXISTS vcam.dedup_log',
    ],
  },
  {
    version: 11,
    name: 'the cold look-up skips granules without the asked ids',
    statements: () => [
      // Most ids the cold tier is asked about were never counted (events later than the hot
      // horizon), yet their (device, ts) granules were read whole: 8,192 rows each. A bloom
      // filter of the granule's ids lets ClickHouse skip them. The look-up asks for a chunk's ids
      // together, and a granule is read when any of them may be in it, so the false-positive rate
      // is 1 in 10,000, not the usual 1 in 100 (which skipped only a fifth of them at 150 ids).
      // About 2.3 bytes per row, 6 % of the table; no insert cost measured (docs/performance.md).
      'ALTER TABLE vcam.events ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.0001) GRANULARITY 1',
      // Late events are mostly hours late, not days: older parts are still read, only not skipped.
      ...[0, 1, 2].map((d) => `ALTER TABLE vcam.events MATERIALIZE INDEX event_id_bloom IN PARTITION ${utcDay(Date.now() - d * 86_400_000)}`),
    ],
  },
];

/** Applies the migrations not yet recorded; returns the versions applied now. */
export async function migrate(client: ClickHouseClient, retention: Retention = DEFAULT_RETENTION): Promise<number[]> {
  await client.command({ query: 'CREATE DATABASE IF NOT EXISTS vcam' });
  await client.command({
    query: "CREATE TABLE IF NOT EXISTS vcam.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version",
  });
  const rows = await (await client.query({ query: 'SELECT version FROM vcam.schema_migrations', format: 'JSONEachRow' })).json<{ version: number }>();
  const done = new Set(rows.map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    for (const query of m.statements(retention)) await client.command({ query });
    await client.insert({ table: 'vcam.schema_migrations', values: [{ version: m.version, name: m.name }], format: 'JSONEachRow' });
    applied.push(m.version);
  }
  return applied;
}
