/** The gateway's systemd unit: valid for systemd, hardened, and configuring the agent with variables it reads. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { helpText } from '../../common/config.js';
import { agentCommand } from '../../agent/cli.js';

const UNIT = fileURLToPath(new URL('vcam-agent.service', import.meta.url));
const VCAM_BIN = fileURLToPath(new URL('../../bin/vcam.js', import.meta.url));

describe('deploy/systemd/vcam-agent.service', () => {
  const unit = readFileSync(UNIT, 'utf8');

  // Never skipped: .ci/run installs systemd-analyze (Debian's systemd package).
  it('passes systemd-analyze verify', async () => {
    // verify checks that ExecStart's binary exists: the documented layout (node, /opt/vcam) is
    // mapped onto this machine's node and this checkout; nothing else in the unit changes.
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/vcam/bin/vcam.js agent ');
    const copy = join(mkdtempSync(join(tmpdir(), 'vcam-unit-')), 'vcam-agent.service');
    writeFileSync(copy, unit.replace('ExecStart=/usr/bin/node /opt/vcam/bin/vcam.js', `ExecStart=${process.execPath} ${VCAM_BIN}`).replace('EnvironmentFile=/etc/vcam/agent.env', 'EnvironmentFile=-/etc/vcam/agent.env'));
    const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', copy]);
    expect(stderr).toBe('');
  });

  it('restarts, keeps its state directory and carries the hardening options', () => {
    for (const line of ['Restart=always', 'StateDirectory=vcam-agent', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'User=vcam']) expect(unit).toContain(line);
  });

  it('sets only environment variables the agent reads', () => {
    const help = helpText(agentCommand);
    const names = [...unit.matchAll(/\b(VCAM_[A-Z_]+)=/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThanOrEqual(4);
    for (const n of names) expect(help, n).toContain(`[${n}]`);
  });
});
