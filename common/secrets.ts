/** Secrets: compared without telling, by timing, how much of a guess was right; kept in files. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant time whatever the lengths: both sides are hashed to equal-length digests first. */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** A secret read from a file (trimmed), with an error that names the file and the option. */
export function readSecretFile(path: string, option: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${option}: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!text) throw new ConfigError(`${option}: ${path} is empty`);
  return text;
}

/**
 * The secret kept in `path`: made at first use (32 random bytes, base64url) readable by its
 * owner only, the same one on every later start. A file others can read is refused, not used.
 */
export function ensureSecretFile(path: string): string {
  try {
    writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`cannot create ${path}: ${(err as Error).message}`);
  }
  refuseShared(path);
  return readSecretFile(path, 'secret file');
}

/** A file holding secrets that others may read is refused, not used. */
export function refuseShared(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new ConfigError(`${path} is readable by others (mode ${mode.toString(8)}); chmod 600 ${path}`);
}
