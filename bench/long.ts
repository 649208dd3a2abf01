/**
 * `npm run bench -- long` (opt-in, 15 minutes by default): one Kafka-mode verify long enough to
 * reach the hot horizon and several bursts, with what each part of the stack did every 15 s.
 * A 30 s probe never sees a burst (the first starts at 3 minutes) nor the cold look-ups of
 * events later than the horizon, so only a run this long shows whether a rate holds.
 * VCAM_BENCH_RATE (default 15000) and VCAM_BENCH_DURATION_S (default 720) change it.
 */
import { createClient } from '@clickhouse/client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSecretFile } from '../common/secrets.js';
import { SCENARIO_DEFAULTS, verify, type Progress } from '../simulator/index.js';
import type { Stack } from '../simulator/stack.js';
import { readProc } from './procstat.js';

const EVERY_MS = 15_000;
/** ClickHouse's own counters (system.events), reported per second. */
const CH_EVENTS = ['SelectQuery', 'InsertQuery', 'SelectedRows', 'SelectQueryTimeMicroseconds', 'InsertQueryTimeMicroseconds', 'MergedRows', 'InsertedRows'];
/** The processor's memory, from its own metrics. */
const PROCESSOR_MEMORY = ['vcam_process_resident_memory_bytes', 'vcam_nodejs_heap_size_total_bytes', 'vcam_nodejs_external_memory_bytes'];

interface Sample {
  t: number;
  sent?: number;
  agentBacklog?: number;
  kafkaBacklogRecords?: number;
  cpuPercent: Record<string, number>;
  clickhouse: Record<string, number>;
  processorMb: Record<string, number>;
}

/** Samples the stack every EVERY_MS until stopped. */
function sampler(stack: Stack, progress: () => Progress | undefined): { samples: Sample[]; stop: () => void } {
  const client = createClient({ url: stack.clickhouseUrl, password: readSecretFile(stack.clickhousePasswordFile, 'ClickHouse password') });
  const samples: Sample[] = [];
  const lastCpu = new Map<string, number>();
  const lastEvent = new Map<string, number>();
  const t0 = Date.now();
  let lastAt = t0;
  const tick = async () => {
    const now = Date.now();
    const dt = (now - lastAt) / 1000;
    lastAt = now;
    const cpuPercent: Record<string, number> = {};
    const pids: [string, number | undefined][] = [['simulator+agents', process.pid], ...stack.children.map((c) => [c.name, c.child.pid] as [string, number | undefined]), ['kafka', stack.kafka?.pid]];
    for (const [name, pid] of pids) {
      const s = pid ? readProc(pid) : undefined;
      if (!s) continue;
      cpuPercent[name] = Math.round(((s.cpuS - (lastCpu.get(name) ?? s.cpuS)) / dt) * 100);
      lastCpu.set(name, s.cpuS);
    }
    const [events, metrics, backlog] = await Promise.all([
      client
        .query({ query: 'SELECT event, value FROM system.events WHERE event IN {names:Array(String)}', query_params: { names: CH_EVENTS }, format: 'JSONEachRow' })
        .then((r) => r.json<{ event: string; value: string }>())
        .catch(() => []),
      fetch(stack.children.find((c) => c.name === 'processor-1')?.metricsUrl ?? 'http://127.0.0.1:1/').then(
        (r) => r.text(),
        () => '',
      ),
      stack.kafkaBacklog(),
    ]);
    const clickhouse: Record<string, number> = {};
    for (const e of events) {
      const v = Number(e.value);
      clickhouse[`${e.event}PerS`] = Math.round((v - (lastEvent.get(e.event) ?? v)) / dt);
      lastEvent.set(e.event, v);
    }
    const processorMb: Record<string, number> = {};
    for (const m of PROCESSOR_MEMORY) {
      const v = new RegExp(`^${m}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1];
      if (v) processorMb[m.replace(/^vcam_(nodejs_|process_)/, '').replace(/_bytes$/, '')] = Math.round(Number(v) / 1_048_576);
    }
    const p = progress();
    samples.push({ t: Math.round((now - t0) / 1000), sent: p?.sent, agentBacklog: p?.backlog, kafkaBacklogRecords: backlog, cpuPercent, clickhouse, processorMb });
  };
  const timer = setInterval(() => void tick(), EVERY_MS);
  return {
    samples,
    stop: () => {
      clearInterval(timer);
      void client.close();
    },
  };
}

export async function benchLong(): Promise<Record<string, unknown>> {
  const rate = Number(process.env.VCAM_BENCH_RATE ?? 15_000);
  const durationMs = Number(process.env.VCAM_BENCH_DURATION_S ?? 720) * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'vcam-bench-long-'));
  let progress: Progress | undefined;
  let sampling: ReturnType<typeof sampler> | undefined;
  try {
    const r = await verify({
      mode: 'kafka',
      scenario: { ...SCENARIO_DEFAULTS, rate, durationMs },
      dir,
      breakDedup: false,
      partitions: 4,
      alertBaselineMinutes: 10,
      drainTimeoutMs: 120_000,
      logLevel: 'warn',
      onStackUp: (stack) => {
        sampling = sampler(stack, () => progress);
      },
      onProgress: (phase, p) => {
        if (p) progress = p;
        if (phase === 'running' && p) process.stderr.write(`\rlong: ${p.elapsedS.toFixed(0)} s, ${p.sent} sent, ${p.backlog} in the agents   `);
      },
    });
    sampling?.stop();
    const { ok, problems, sent, unique, counted, uncounted, lost, inFlight, doubleCounted, latencyAfterWarmupMs, throughputEps, drainS } = r;
    return {
      what: `verify --kafka --rate ${rate} for ${durationMs / 1000} s, sampled every ${EVERY_MS / 1000} s`,
      ok,
      problems,
      sent,
      unique,
      counted,
      uncounted,
      lost,
      inFlight,
      doubleCounted,
      latencyAfterWarmupMs,
      throughputEps,
      drainS,
      samples: sampling?.samples ?? [],
    };
  } finally {
    sampling?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
