/**
 * Debian's Prometheus on loopback with vcam's alert rules, for `vcam verify --chaos`: did every
 * fault open an alert, and did it resolve? The rules are the shipped ones with every `for:`
 * set to 0s, because faults in a test run last seconds, not the minutes production waits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../common/http.js';
import { PACKAGE_ROOT } from '../common/paths.js';
import { sleep } from '../common/retry.js';

export interface Target {
  job: 'vcam-agent' | 'vcam-bridge' | 'vcam-processor' | 'vcam-archive';
  /** host:port of its /metrics */
  address: string;
  /** The stack's name for it, as label `component`. */
  component: string;
}

/** One alert's firing stretch, from Prometheus' ALERTS series. */
export interface Firing {
  alertname: string;
  labels: Record<string, string>;
  fromMs: number;
  /** undefined while still firing */
  toMs?: number;
}

export const RULES_FILE = join(PACKAGE_ROOT, 'deploy', 'prometheus', 'rules.yml');

export class Prometheus {
  private proc?: ChildProcess;
  url = '';

  constructor(private readonly dir: string) {}

  async start(targets: Target[]): Promise<void> {
    const rules = join(this.dir, 'rules.yml');
    writeFileSync(rules, readFileSync(RULES_FILE, 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 0s'));
    const jobs = new Map<string, Target[]>();
    for (const t of targets) jobs.set(t.job, [...(jobs.get(t.job) ?? []), t]);
    const config = join(this.dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        // A loaded 2-core machine can take over a second to answer /metrics: that is not "down".
        'global: { scrape_interval: 2s, evaluation_interval: 1s, scrape_timeout: 2s }',
        `rule_files: [${JSON.stringify(rules)}]`,
        'scrape_configs:',
        ...[...jobs].map(([job, ts]) => `  - { job_name: ${job}, static_configs: [${ts.map((t) => `{ targets: ['${t.address}'], labels: { component: '${t.component}' } }`).join(', ')}] }`),
        '',
      ].join('\n'),
    );
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    this.proc = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(this.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => this.proc!.once('error', (err) => reject(new Error(`cannot run prometheus (apt-get install prometheus): ${err.message}`))));
    const ready = (async () => {
      for (let i = 0; i < 150; i++) {
        if (
          await fetch(`${this.url}/-/ready`).then(
            (r) => r.ok,
            () => false,
          )
        )
          return;
        await sleep(200);
      }
      throw new Error(`prometheus did not become ready at ${this.url}`);
    })();
    await Promise.race([ready, failed]);
  }

  /** Every stretch during which an alert was firing between `fromMs` and now. */
  async firings(fromMs: number): Promise<Firing[]> {
    const now = Date.now();
    const q = new URLSearchParams({ query: 'ALERTS{alertstate="firing"}', start: String(fromMs / 1000), end: String(now / 1000), step: '1' });
    const res = (await (await fetch(`${this.url}/api/v1/query_range?${q}`)).json()) as { data: { result: { metric: Record<string, string>; values: [number, string][] }[] } };
    const out: Firing[] = [];
    for (const series of res.data.result) {
      const { alertname, alertstate: _s, __name__: _n, ...labels } = series.metric;
      let stretch: Firing | undefined;
      let last = 0;
      for (const [t] of series.values) {
        const ms = t * 1000;
        if (!stretch || ms - last > 1_500) {
          if (stretch) stretch.toMs = last + 1_000;
          stretch = { alertname: alertname!, labels, fromMs: ms };
          out.push(stretch);
        }
        last = ms;
      }
      // A series sampled up to the last step is still firing.
      if (stretch && now - last > 2_500) stretch.toMs = last + 1_000;
    }
    return out;
  }

  /** Last resort on exit. */
  kill(): void {
    if (this.proc?.exitCode === null) this.proc.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    const exited = new Promise((resolve) => this.proc!.once('exit', resolve));
    this.proc.kill('SIGTERM');
    await exited;
  }
}
