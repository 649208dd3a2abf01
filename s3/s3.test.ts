/**
 * The local S3 server: S3Proxy on loopback only, with signed requests required, objects kept
 * across a kill, and a JVM that dies with its parent; `vcam s3`'s credentials file and its
 * errors when something is missing.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../common/http.js';
import { credentialsFrom, S3Store } from '../common/s3.js';
import { waitFor } from '../test/helpers/brokers.js';
import { vcam, type Proc } from '../test/helpers/processes.js';
import { startTestS3 } from '../test/helpers/s3.js';
import { S3PROXY_VERSION, type LocalS3 } from './index.js';

/**
 * The addresses listening on a TCP port, from the kernel's own table. Java binds IPv4 addresses
 * on a dual-stack socket, listed in tcp6 as ::ffff:a.b.c.d; those are given as a.b.c.d.
 */
function listeners(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local?.endsWith(`:${hex}`)) continue;
      // Each 32-bit word in host (little-endian) order.
      const bytes = Buffer.concat(
        local
          .split(':')[0]!
          .match(/.{8}/g)!
          .map((w) => Buffer.from(w, 'hex').reverse()),
      );
      const v4 = bytes.length === 4 ? bytes : bytes.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex')) ? bytes.subarray(12) : undefined;
      out.push(v4 ? [...v4].join('.') : bytes.toString('hex'));
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('LocalS3', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await startTestS3();
  }, 60_000);
  afterAll(() => s3?.stop());

  it(`is S3Proxy ${S3PROXY_VERSION} listening on 127.0.0.1 only, with its settings file readable by its owner only`, () => {
    expect(s3.version).toBe('4.1.0');
    expect(listeners(s3.port)).toEqual(['127.0.0.1']);
    const file = join(s3.dataDir, 's3proxy.properties');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const settings = Object.fromEntries([...readFileSync(file, 'utf8').matchAll(/^([a-z0-9.-]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    expect(settings).toEqual({
      's3proxy.endpoint': s3.endpoint,
      's3proxy.authorization': 'aws-v2-or-v4',
      's3proxy.identity': s3.identity,
      's3proxy.credential': s3.credential,
      'jclouds.provider': 'filesystem',
      'jclouds.filesystem.basedir': s3.basedir,
      's3proxy.ignore-unknown-headers': 'true',
    });
  });

  it('made random credentials and refuses unsigned requests', async () => {
    expect(s3.identity).toMatch(/^vcam-[0-9a-f]{12}$/);
    expect(s3.credential).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const unsigned = await fetch(`${s3.endpoint}/lake/x`, { method: 'PUT', body: 'x' });
    expect(unsigned.status).toBe(403);
    expect(await s3.store().get('x')).toBe(undefined);
  });

  it('after kill -9 and a restart: the same port, credentials and objects', async () => {
    const store = s3.store('s3://lake/t');
    expect(await store.putIfAbsent('k', Buffer.from('kept'))).toBe(true);
    const [port, pid] = [s3.port, s3.pid!];
    await s3.kill();
    expect(alive(pid)).toBe(false);
    await s3.start();
    expect([s3.port, s3.pid === pid]).toEqual([port, false]);
    expect((await store.get('k'))!.toString()).toBe('kept');
    expect(readFileSync(join(s3.basedir, 'lake', 't', 'k'), 'utf8')).toBe('kept');
  }, 60_000);
});

describe('vcam s3', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'vcam-s3-cli-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const credentialsFile = join(dataDir, 's3.credentials');

  /** `vcam s3` in the foreground, once it says it is serving; the JVM's pid from that line. */
  async function serve(port: number): Promise<{ p: Proc; javaPid: number }> {
    const p = vcam(['s3', '--data-dir', dataDir, '--port', String(port), '--bucket', 'lake']);
    await waitFor(
      () => {
        if (p.child.exitCode !== null) throw new Error(`vcam s3 exited ${p.child.exitCode}: ${p.stderr()}`);
        return p.stderr().includes('S3 API serving at');
      },
      60_000,
      'vcam s3 serving',
    );
    const line = p
      .stderr()
      .split('\n')
      .find((l) => l.includes('S3 API serving at'))!;
    const logged = JSON.parse(line) as { msg: string; endpoint: string; credentialsFile: string; pid: number };
    expect([logged.msg, logged.endpoint, logged.credentialsFile]).toEqual([`S3 API serving at http://127.0.0.1:${port}; credentials in ${credentialsFile}`, `http://127.0.0.1:${port}`, credentialsFile]);
    return { p, javaPid: logged.pid };
  }

  it('serves with credentials it writes once (mode 0600) and keeps across restarts; SIGTERM stops it, and a killed vcam takes S3Proxy with it', async () => {
    const port = await freePort();
    const first = await serve(port);
    expect(statSync(credentialsFile).mode & 0o777).toBe(0o600);
    const text = readFileSync(credentialsFile, 'utf8');
    expect(text).toMatch(/^AWS_ACCESS_KEY_ID=vcam-[0-9a-f]{12}\nAWS_SECRET_ACCESS_KEY=[A-Za-z0-9_-]{32}\n$/);
    const store = () => new S3Store('s3://lake/cli', { endpoint: `http://127.0.0.1:${port}`, credentials: credentialsFrom({ file: credentialsFile, env: {} }) });
    expect(await store().putIfAbsent('k', Buffer.from('v'))).toBe(true);
    first.p.child.kill('SIGTERM');
    expect(await first.p.exited).toBe(0);
    expect(alive(first.javaPid)).toBe(false);

    const second = await serve(port);
    expect(readFileSync(credentialsFile, 'utf8')).toBe(text);
    expect((await store().get('k'))!.toString()).toBe('v');
    // kill -9 of vcam runs none of its code: the kernel's parent-death signal ends the JVM.
    second.p.child.kill('SIGKILL');
    expect(await second.p.exited).toBe('SIGKILL');
    await waitFor(() => !alive(second.javaPid), 20_000, 'S3Proxy gone with its parent');
  }, 120_000);

  it('exits 69 naming the one command that fetches the jar when it is missing', async () => {
    const p = vcam(['s3', '--data-dir', join(dataDir, 'unused')], { VCAM_S3PROXY_HOME: '/nonexistent/vcam-s3proxy' });
    expect(await p.exited).toBe(69);
    expect(p.stderr()).toBe(`S3Proxy ${S3PROXY_VERSION} is not fetched (nothing complete in /nonexistent/vcam-s3proxy): run \`vcam s3 fetch\` (or \`npm run s3:fetch\`) once; it needs Java 17+ and Maven\n`);
  });

  it('exits 69 saying how to install Java when there is none', async () => {
    const p = vcam(['s3', '--data-dir', join(dataDir, 'unused')], { PATH: '/nonexistent' });
    expect(await p.exited).toBe(69);
    expect(p.stderr()).toBe('java is not on PATH: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless), then run `vcam s3 fetch` (or `npm run s3:fetch`) once; it needs Java 17+ and Maven\n');
  });

  it('`vcam s3 fetch` leaves a complete cache alone', async () => {
    const p = vcam(['s3', 'fetch']);
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toMatch(new RegExp(`^S3Proxy ${S3PROXY_VERSION} already in \\S+/s3proxy-${S3PROXY_VERSION}\\n$`));
  });

  it('--help names the release, every option and the fetch', async () => {
    const p = vcam(['s3', '--help']);
    let out = '';
    p.child.stdout!.on('data', (d) => (out += d));
    expect(await p.exited).toBe(0);
    for (const s of [S3PROXY_VERSION, '--data-dir', '--port', '--bucket', '--heap', 's3.credentials', 'vcam s3 fetch']) expect(out).toContain(s);
  });
});
