/** Turns the processor's events into Prometheus metrics and log lines, in one place. */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../common/metrics.js';
import type { Logger } from '../common/log.js';
import { taskStreaks, type TaskStreak } from '../common/streak.js';
import type { KeptConsumer } from './consumer.js';
import type { DlqConsumer } from './dlq.js';
import type { Processor } from './processor.js';
import type { ChunkWriter } from './writer.js';

/** The dead-letter copier's losses: dead letters Kafka dropped before they were copied. */
export function instrumentDlq(dlq: DlqConsumer, registry: Registry, log: Logger): void {
  const lost = new Counter({ name: 'vcam_processor_dlq_offsets_lost_total', help: 'Dead-letter offsets Kafka no longer held when the copier reached them (never copied into vcam.dlq)', registers: [registry] });
  dlq.on('offsetGap', (partition, expected, got) => {
    lost.inc(Number(got - expected));
    log.error({ partition, expected: String(expected), got: String(got) }, 'dead letters lost: Kafka no longer held them when the copier reached them');
  });
}

/** Metrics of chunk writing, common to the Kafka consumer and the single-node hand-off. */
export function instrumentWriter(w: ChunkWriter, registry: Registry, log: Logger): void {
  const r = [registry];
  const counted = new Counter({ name: 'vcam_processor_events_counted_total', help: 'Distinct events written to ClickHouse', registers: r });
  const duplicates = new Counter({ name: 'vcam_processor_duplicates_dropped_total', help: 'Events dropped as duplicates of an eventId already counted', registers: r });
  const late = new Counter({ name: 'vcam_processor_events_late_total', help: 'Counted events that arrived after the lateness bound (still in their own bucket)', registers: r });
  const unknownGeo = new Counter({ name: 'vcam_processor_events_unknown_geo_total', help: 'Counted events whose geoId is not in the reference table', registers: r });
  const dead = new Counter({ name: 'vcam_processor_dead_letters_total', help: 'Messages written to vcam.dlq, by reason', labelNames: ['reason'], registers: r });
  const chunks = new Counter({ name: 'vcam_processor_chunks_total', help: 'Chunk writes, each of one or more partitions (redo: a recorded chunk replayed after a restart or rebalance)', labelNames: ['kind'], registers: r });
  const writeFailures = new Counter({
    name: 'vcam_processor_clickhouse_write_failures_total',
    help: 'ClickHouse requests that failed and are retried: of a chunk write or a partition recovery (consumption of that partition waits), or of start-up (the processor waits)',
    registers: r,
  });
  const latency = new Histogram({ name: 'vcam_processor_e2e_latency_seconds', help: 'Agent receive time to ClickHouse commit', buckets: LATENCY_BUCKETS, registers: r });
  w.on('chunk', (c) => {
    counted.inc(c.result.events.length);
    if (c.result.duplicates) duplicates.inc(c.result.duplicates);
    if (c.result.late) late.inc(c.result.late);
    if (c.result.unknownGeo) unknownGeo.inc(c.result.unknownGeo);
    for (const d of c.result.dead) dead.inc({ reason: d.reason });
    chunks.inc({ kind: 'new' });
    for (const ms of c.latenciesMs) latency.observe(ms / 1000);
  });
  w.on('replayed', (token, rows) => {
    chunks.inc({ kind: 'redo' });
    log.info({ chunk: token, events: rows }, 'replayed the last recorded chunk from its kept rows');
  });
  let lastWarned = 0;
  w.on('writeFailed', (err, partition, attempt, retryInMs) => {
    writeFailures.inc();
    if (partition === null) return log.warn({ err: err.message, attempt, retryInMs }, 'waiting for ClickHouse');
    if (Date.now() - lastWarned < 10_000) return;
    lastWarned = Date.now();
    log.warn({ err: err.message, partition, attempt, retryInMs }, 'ClickHouse request failed; the partition waits and retries');
  });
}

export function instrumentProcessor(p: Processor, registry: Registry, log: Logger): void {
  instrumentWriter(p.writer, registry, log);
  const r = [registry];
  const gaps = new Counter({ name: 'vcam_processor_offset_gaps_total', help: 'Times Kafka no longer held the offsets to be processed (data loss)', registers: r });
  const lost = new Counter({ name: 'vcam_processor_offsets_lost_total', help: 'Offsets skipped because Kafka no longer held them', registers: r });
  new Gauge({
    name: 'vcam_processor_dedup_hot_ids',
    help: 'EventIds held in the in-memory dedup tier (by 32-bit fingerprint)',
    registers: r,
    collect() {
      this.set(p.hotIds());
    },
  });
  new Gauge({
    name: 'vcam_processor_consumer_lag_events',
    help: 'High watermark minus the next offset to count, per partition',
    labelNames: ['partition'],
    registers: r,
    collect() {
      this.reset();
      for (const [partition, lag] of p.lag()) this.set({ partition: String(partition) }, lag);
    },
  });

  p.on('recovered', (partition, next, hotIds) => log.info({ partition, next: String(next), hotIds }, 'partition assigned: dedup state rebuilt'));
  p.on('rowsExpired', (partition, token) => log.error({ partition, chunk: token }, 'the last recorded chunk kept no rows to replay (older than 7 days, or recorded before rows were kept); its writes are taken as complete'));
  p.on('offsetGap', (partition, expected, got) => {
    gaps.inc();
    lost.inc(Number(got - expected));
    log.error({ partition, expected: String(expected), got: String(got) }, 'DATA LOSS: Kafka no longer holds these offsets (retention passed before they were processed)');
  });
  const backwards = new Counter({ name: 'vcam_processor_offsets_backwards_total', help: "Times a partition's log ended before offsets already counted (topic recreated or log truncated); the partition is held", registers: r });
  p.on('offsetsBackwards', (partition, expected, logEnd) => {
    backwards.inc();
    log.error({ partition, expected: String(expected), logEnd: String(logEnd) }, 'Kafka offsets went backwards (topic recreated or log truncated): partition held, nothing counted from it; see the runbook of VcamOffsetsBackwards');
  });
  p.on('geoReloaded', (geos) => log.info({ geos }, 'geo reference table loaded'));
  p.on('replayHeld', (partition, chunk, distance, window) =>
    log.error({ partition, chunk, distance, window }, "partition held: its unfinished last chunk is further back than ClickHouse's deduplication window; replaying it could count it twice (docs/operations.md)"),
  );
  const streakOf = taskStreaks(registry, log, 'processor');
  const streaks = new Map<string, TaskStreak>();
  const streak = (task: string) => streaks.get(task) ?? streaks.set(task, streakOf(task)).get(task)!;
  p.on('taskFailed', (task, err) => streak(task).failed(err));
  p.on('taskOk', (task) => streak(task).ok());
}

/** The processor's Kafka consumers, by name: in their group or not, and every stop and failed start. */
export function instrumentConsumers(members: Record<string, KeptConsumer>, registry: Registry, log: Logger): void {
  const r = [registry];
  const downs = new Counter({ name: 'vcam_processor_consumer_restarts_total', help: 'Times a Kafka consumer stopped or failed to start and was started again (by kafkajs or with our backoff)', labelNames: ['consumer'], registers: r });
  new Gauge({
    name: 'vcam_processor_consumer_up',
    help: '1 while the Kafka consumer has a member in its group, 0 while it is down and restarting',
    labelNames: ['consumer'],
    registers: r,
    collect() {
      for (const [consumer, m] of Object.entries(members)) this.set({ consumer }, m.downSince === undefined ? 1 : 0);
    },
  });
  for (const [consumer, m] of Object.entries(members)) {
    downs.inc({ consumer }, 0);
    m.on('down', (err, attempt, retryInMs) => {
      downs.inc({ consumer });
      // Once per streak, then every tenth attempt: the alert and the gauge carry the rest.
      if (attempt === 1 || attempt % 10 === 0) log.error({ consumer, err: err.message, attempt, retryInMs, restartedBy: retryInMs === undefined ? 'kafkajs' : 'vcam' }, 'Kafka consumer down; starting a new member');
    });
    m.on('joined', (downMs) => {
      if (downMs !== undefined) log.info({ consumer, downS: Math.round(downMs / 1000) }, 'Kafka consumer back in its group');
    });
  }
}
