import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineCommand, loadConfig } from './config.js';
import { ConfigError } from './errors.js';

const cmd = defineCommand({
  name: 'vcam test',
  summary: 'a test command',
  options: {
    id: { type: 'string', required: true, env: 'VCAM_TEST_ID', description: 'id' },
    port: { type: 'int', default: 8080, description: 'port' },
    verbose: { type: 'boolean', default: false, description: 'verbose' },
    brokers: { type: 'list', description: 'brokers' },
    timeout: { type: 'duration', default: '5s', description: 'timeout' },
    maxBody: { type: 'bytes', default: '1MiB', description: 'limit' },
    policy: { type: 'string', choices: ['reject', 'drop-oldest'], default: 'reject', description: 'policy' },
  },
});

function file(content: object): string {
  const p = join(mkdtempSync(join(tmpdir(), 'vcam-cfg-')), 'c.json');
  writeFileSync(p, JSON.stringify(content));
  return p;
}

function load(argv: string[], env: Record<string, string> = {}) {
  const r = loadConfig(cmd, argv, env);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

describe('config precedence: flags > environment > file > default', () => {
  it('uses defaults and parses units', () => {
    expect(load(['--id', 'a'])).toEqual({ id: 'a', port: 8080, verbose: false, timeout: 5000, maxBody: 1048576, policy: 'reject' });
  });

  it('takes each layer in order', () => {
    const f = file({ id: 'from-file', port: 1, 'max-body': '2KiB', brokers: ['f:1'] });
    expect(load(['--config', f])).toMatchObject({ id: 'from-file', port: 1, maxBody: 2048, brokers: ['f:1'] });
    expect(load(['--config', f], { VCAM_PORT: '2', VCAM_TEST_ID: 'from-env' })).toMatchObject({ id: 'from-env', port: 2 });
    expect(load(['--config', f, '--port=3', '--id', 'from-flag'], { VCAM_PORT: '2' })).toMatchObject({ id: 'from-flag', port: 3 });
    expect(load(['--id', 'a'], { VCAM_CONFIG: f })).toMatchObject({ port: 1 });
  });

  it('takes durations only with a unit, from every source; a bare 0 is 0', () => {
    expect(load(['--id', 'a', '--timeout', '1.5s']).timeout).toBe(1_500);
    expect(load(['--id', 'a', '--timeout', '0']).timeout).toBe(0);
    expect(() => load(['--id', 'a'], { VCAM_TIMEOUT: '30' })).toThrow(/VCAM_TIMEOUT: "30" is not a duration without a unit: write 30s/);
    expect(() => load(['--config', file({ id: 'a', timeout: 30 })])).toThrow(/c.json: "timeout": 30 is not a duration without a unit: write 30s/);
  });

  it('parses booleans, negations and lists', () => {
    expect(load(['--id', 'a', '--verbose']).verbose).toBe(true);
    expect(load(['--id', 'a', '--no-verbose'], { VCAM_VERBOSE: 'true' }).verbose).toBe(false);
    expect(load(['--id', 'a', '--brokers', 'h1:9092, h2:9092']).brokers).toEqual(['h1:9092', 'h2:9092']);
  });

  it.each([
    [['--id', 'a', '--port', 'eighty'], /--port: "eighty" is not an integer/],
    [['--id', 'a', '--bogus', '1'], /unknown flag --bogus/],
    [['--id', 'a', '--timeout', 'soon'], /duration/],
    // A bare number was milliseconds: `--duration 30` ran for 30 ms and reported success.
    [['--id', 'a', '--timeout', '30'], /--timeout: "30" is not a duration without a unit: write 30s \(or 30ms, 30m\)/],
    [['--id', 'a', '--policy', 'explode'], /one of reject, drop-oldest/],
    [['--id'], /--id needs a value/],
    [[], /--id is required \(or set VCAM_TEST_ID\)/],
    [['--config', '/nonexistent/c.json', '--id', 'a'], /cannot read config file/],
  ])('rejects %j with an actionable message', (argv, message) => {
    expect(() => load(argv)).toThrow(ConfigError);
    expect(() => load(argv)).toThrow(message);
  });

  it('rejects a config file with an unknown key or bad JSON', () => {
    expect(() => load(['--config', file({ id: 'a', prot: 1 })])).toThrow(/unknown key "prot"/);
    const bad = join(mkdtempSync(join(tmpdir(), 'vcam-cfg-')), 'bad.json');
    writeFileSync(bad, '{ id: ');
    expect(() => load(['--config', bad])).toThrow(/not valid JSON/);
  });

  it('prints help listing every option with its env variable and default', () => {
    const r = loadConfig(cmd, ['--help'], {});
    expect(r.help).toBe(true);
    if (r.help) {
      expect(r.text).toContain('--max-body <bytes>');
      expect(r.text).toContain('[VCAM_TEST_ID]');
      expect(r.text).toContain('(default: 5s)');
    }
  });
});
