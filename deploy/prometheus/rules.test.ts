/** The alert rules: valid, unit-tested by promtool (fire and not fire), every metric real, every runbook written. */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(HERE, '..', '..');
const run = promisify(execFile);

/** The source of every component that exports metrics (tests excluded). */
function componentSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ts$/.test(f) && !f.endsWith('.test.ts')) out.push(readFileSync(p, 'utf8'));
    }
  };
  for (const dir of ['agent', 'bridge', 'processor', 'archive', 'common']) walk(join(ROOT, dir));
  return out;
}

describe('Prometheus rules and config', () => {
  it('pass promtool check rules, check config, and the rule unit tests', async () => {
    await run('promtool', ['check', 'rules', 'rules.yml'], { cwd: HERE });
    await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: HERE });
    const { stdout } = await run('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: HERE });
    expect(stdout).toContain('SUCCESS');
  });

  it('unit-test every alert, and name only metrics the components export', () => {
    const rules = readFileSync(join(HERE, 'rules.yml'), 'utf8');
    const tests = readFileSync(join(HERE, 'rules.test.yml'), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
    for (const a of alerts) {
      // Each alert has a case where it does not fire and one where it does.
      expect(tests, a).toMatch(new RegExp(`alertname: ${a}, exp_alerts: \\[\\] \\}`));
      expect(tests, a).toMatch(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
    }
    const exported = new Set(componentSources().flatMap((src) => [...src.matchAll(/name: '(vcam_\w+)'/g)].map((m) => m[1]!)));
    const used = new Set([...rules.matchAll(/\b(vcam_\w+)/g)].map((m) => m[1]!.replace(/_bucket$/, '')));
    expect([...used].filter((m) => !exported.has(m))).toEqual([]);
  });

  it('link each alert to a runbook section in docs/operations.md', () => {
    const rules = readFileSync(join(HERE, 'rules.yml'), 'utf8');
    const ops = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    const anchors = new Set([...ops.matchAll(/^### (\w+)$/gm)].map((m) => m[1]!.toLowerCase()));
    for (const [, alert, anchor] of rules.matchAll(/- alert: (\w+)[\s\S]*?runbook_url: docs\/operations\.md#(\w+)/g)) {
      expect(anchor, alert).toBe(alert!.toLowerCase());
      expect(anchors.has(anchor!), `runbook for ${alert}`).toBe(true);
    }
  });

  it('name every metric by the Prometheus guide: vcam_ prefix, counters *_total, durations in seconds, sizes in bytes', () => {
    const defs = componentSources().flatMap((src) => [...src.matchAll(/new (Counter|Gauge|Histogram)\(\{\s*name: '(\w+)'/g)].map((m) => ({ kind: m[1]!, name: m[2]! })));
    expect(defs.length).toBeGreaterThan(30);
    const bad = defs.filter(({ kind, name }) => !name.startsWith('vcam_') || (kind === 'Counter') !== name.endsWith('_total') || (kind === 'Histogram' && !/_(seconds|bytes)$/.test(name)) || /_(ms|milliseconds|kb|mb)(_|$)/.test(name));
    expect(bad).toEqual([]);
  });
});
