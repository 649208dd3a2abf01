/** Runs `vcam verify …` as a user does and parses its one JSON report. */
import type { VerifyReport } from '../../simulator/index.js';
import { vcam, type Proc } from './processes.js';

export async function runVerify(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; report: VerifyReport; proc: Proc }> {
  const proc = vcam(['verify', '--json', ...args], env);
  let out = '';
  proc.child.stdout!.on('data', (d) => (out += d));
  const code = await proc.exited;
  try {
    return { code, report: JSON.parse(out) as VerifyReport, proc };
  } catch {
    throw new Error(`verify printed no JSON report (exit ${code}); stderr:\n${proc.stderr().slice(-3000)}`);
  }
}
