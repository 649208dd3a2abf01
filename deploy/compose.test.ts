/** deploy/compose.yaml: valid for docker-compose, complete, and configuring vcam with variables it reads. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { archiveCommand } from '../archive/cli.js';
import { bridgeCommand } from '../bridge/cli.js';
import { helpText } from '../common/config.js';
import { processorCommand } from '../processor/cli.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const run = promisify(execFile);

describe('deploy/compose.yaml', () => {
  it('passes docker-compose config -q and runs Kafka, ClickHouse, bridge, processor, archiver, Prometheus and Grafana', async () => {
    await run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { cwd: HERE });
    const { stdout } = await run('docker-compose', ['-f', 'compose.yaml', 'config', '--services'], { cwd: HERE });
    expect(stdout.trim().split('\n').sort()).toEqual(['archive', 'archive-volume', 'bridge', 'clickhouse', 'grafana', 'kafka', 'kafka-topics', 'processor', 'prometheus']);
  });

  it('mounts files that exist, and sets only VCAM_* variables the bridge, processor and archiver read', () => {
    const compose = readFileSync(join(HERE, 'compose.yaml'), 'utf8');
    for (const [, path] of compose.matchAll(/- \.\/([\w/.-]+):/g)) expect(existsSync(join(HERE, path!)), path).toBe(true);
    const known = helpText(bridgeCommand) + helpText(processorCommand) + helpText(archiveCommand);
    const set = [...compose.matchAll(/^\s+(VCAM_[A-Z_]+):/gm)].map((m) => m[1]!);
    expect(set.length).toBeGreaterThanOrEqual(4);
    // Grafana reads VCAM_CLICKHOUSE_PASSWORD for its datasource; every other one is a vcam setting.
    for (const n of set) expect(known, n).toContain(`[${n}]`);
  });
});
