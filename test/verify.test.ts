/**
 * `vcam verify` end to end, as a user runs it: real child processes, real ClickHouse engine,
 * real MQTT, the local Apache Kafka broker. Short runs; the 10k events/s figures are in the issue notes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KAFKA_VERSION } from '../kafka/index.js';
import type { VerifyReport } from '../simulator/index.js';
import { waitFor } from './helpers/brokers.js';
import { vcam } from './helpers/processes.js';
import { runVerify } from './helpers/verify.js';

type Report = VerifyReport;

const run = (args: string[], env: Record<string, string> = {}) => runVerify(['--rate', '1000', '--duration', '10s', '--log-level', 'warn', ...args], env);

function expectExact(r: Report): void {
  expect(r.problems).toEqual([]);
  expect(r.unique).toBeGreaterThan(8_000);
  expect(r.counted).toBe(r.unique);
  expect(r.lost).toBe(0);
  // Read from Kafka in Kafka mode: a backlog verify cannot read would be null.
  expect(r.inFlight).toEqual({ agentEvents: 0, kafkaRecords: 0 });
  expect(r.doubleCounted).toBe(0);
  expect(r.dlqExpected).toBeGreaterThan(0);
  expect(r.dlqCounted).toBe(r.dlqExpected);
  expect(r.agentRejected).toBe(r.agentRejectsExpected);
  expect(r.latencyMs.p99).toBeGreaterThan(0);
}

describe('vcam verify', () => {
  it('single-node mode: every distinct event counted once, the exact dead letters, exit 0', async () => {
    const { code, report } = await run([]);
    expect(report.mode).toBe('single-node');
    expectExact(report);
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
  });

  it('Kafka mode (the local Apache Kafka broker, separate bridge and processor processes) with the archive on S3: exact in ClickHouse and in the Delta table, exit 0, the broker named', async () => {
    const { code, report } = await run(['--kafka', '--archive', '--archive-every', '2s']);
    expect(report.mode).toBe('kafka');
    expect(report.kafka).toEqual({ version: KAFKA_VERSION, partitions: 4 });
    expectExact(report);
    const { rows, distinct, lost, doubled } = report.archive!;
    expect({ rows, distinct, lost, doubled }).toEqual({ rows: report.unique, distinct: report.unique, lost: 0, doubled: 0 });
    expect(code).toBe(0);
  });

  it('fails, with exit 1, when the pipeline is broken on purpose (dedup off)', async () => {
    const { code, report } = await run(['--break', 'dedup']);
    expect(report.ok).toBe(false);
    expect(report.doubleCounted).toBeGreaterThan(100);
    expect(report.counted).toBeGreaterThan(report.unique);
    expect(report.problems.join()).toMatch(/counted more than once/);
    expect(code).toBe(1);
  });

  it('Ctrl-C stops the run and every process it started', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'vcam-verify-int-'));
    const proc = vcam(['verify', '--json', '--rate', '500', '--duration', '5m', '--log-level', 'warn'], { TMPDIR: tmp });
    let progress = '';
    proc.child.stderr!.on('data', (d) => (progress += d));
    await waitFor(() => progress.includes('"phase":"running"'), 90_000, 'the simulator running');
    const dir = join(
      tmp,
      readdirSync(tmp).find((d) => d.startsWith('vcam-verify-'))!,
    );
    expect(pids(dir).length).toBeGreaterThanOrEqual(2);
    proc.child.kill('SIGINT');
    expect(await proc.exited).toBe(130);
    expect(pids(dir)).toEqual([]);
  });
});

/** Processes whose command line names the run's directory (its ClickHouse, bridge, processor). */
function pids(dir: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', dir], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
