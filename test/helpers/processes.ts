/** Runs vcam commands as real child processes (from the TypeScript sources), for crash tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './brokers.js';

export const VCAM_BIN = fileURLToPath(new URL('../../bin/vcam.js', import.meta.url));

export interface Proc {
  child: ChildProcess;
  stderr(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export function vcam(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Proc {
  const child = spawn(process.execPath, [...nodeArgs, VCAM_BIN, ...args], {
    env: { ...process.env, VCAM_FROM_SOURCE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, stderr: () => err, exited };
}

export async function waitHealthy(port: number, proc: Proc, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`process exited early (${proc.child.exitCode}): ${proc.stderr()}`);
      return fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
    },
    timeoutMs,
    `health on port ${port}`,
  );
}
