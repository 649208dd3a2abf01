/** Debian's real Prometheus on loopback scraping a running bridge and processor, with vcam's rules loaded. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from './helpers/brokers.js';
import { vcam, waitHealthy, type Proc } from './helpers/processes.js';
import { useKafkaAndClickHouse } from './helpers/stack.js';

const RULES = fileURLToPath(new URL('../deploy/prometheus/rules.yml', import.meta.url));
const env = useKafkaAndClickHouse(2);
const procs: Proc[] = [];
let prometheus: ChildProcess | undefined;

afterAll(async () => {
  prometheus?.kill('SIGTERM');
  for (const p of procs) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
});

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('Prometheus scraping vcam', () => {
  it("scrapes the bridge and the processor, and reads their metrics and vcam's rules back through its HTTP API", async () => {
    const [bridgeHttp, processorHttp, mqtt, promPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), 'vcam-prom-'));
    const processor = vcam(['processor', '--kafka-brokers', env.kafka.bootstrap, ...env.ch.args, '--http-port', String(processorHttp), '--session-timeout', '6s', '--log-level', 'warn']);
    procs.push(processor);
    await waitHealthy(processorHttp, processor, 60_000);
    const bridge = vcam(['bridge', '--kafka-brokers', env.kafka.bootstrap, '--allow-anonymous', '--mqtt-port', String(mqtt), '--http-port', String(bridgeHttp), '--log-level', 'warn']);
    procs.push(bridge);
    await waitHealthy(bridgeHttp, bridge, 60_000);

    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        `  - { job_name: vcam-bridge, static_configs: [{ targets: ['127.0.0.1:${bridgeHttp}'] }] }`,
        `  - { job_name: vcam-processor, static_configs: [{ targets: ['127.0.0.1:${processorHttp}'] }] }`,
        '',
      ].join('\n'),
    );
    prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    const api = async <T>(path: string): Promise<T> => ((await (await fetch(`http://127.0.0.1:${promPort}${path}`)).json()) as { data: T }).data;
    const query = (q: string) => api<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`).then((d) => d.result);
    await waitFor(
      () =>
        fetch(`http://127.0.0.1:${promPort}/-/ready`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
      'Prometheus ready',
    );

    await waitFor(async () => (await query('up{job=~"vcam-.*"} == 1')).length === 2, 30_000, 'both targets up');
    const connected = await query('vcam_bridge_connected_agents');
    expect(connected).toHaveLength(1);
    expect(connected[0]!.metric.job).toBe('vcam-bridge');
    expect(connected[0]!.value[1]).toBe('0');
    const counted = await query('vcam_processor_events_counted_total');
    expect(counted.map((s) => s.metric.job)).toEqual(['vcam-processor']);
    // Process metrics come with the component label, so dashboards can tell the two apart.
    const rss = await query('vcam_process_resident_memory_bytes{job=~"vcam-.*"}');
    expect(rss.map((s) => s.metric.component).sort()).toEqual(['bridge', 'processor']);

    const rules = await api<{ groups: { name: string; rules: { name: string; health: string }[] }[] }>('/api/v1/rules');
    const vcamRules = rules.groups.find((g) => g.name === 'vcam')!.rules;
    expect(vcamRules.map((r) => r.name)).toContain('VcamComponentDown');
    await waitFor(async () => (await api<typeof rules>('/api/v1/rules')).groups[0]!.rules.every((r) => r.health === 'ok'), 15_000, 'every rule evaluated without error');

    // The bridge stops: Prometheus sees it down.
    bridge.child.kill('SIGTERM');
    await bridge.exited;
    await waitFor(async () => (await query('up{job="vcam-bridge"} == 0')).length === 1, 15_000, 'the bridge seen down');
  });
});
