/**
 * Agent credentials. The agents file holds password hashes, never secrets:
 *
 *   { "agents": [ { "id": "gw-1", "secretHash": "scrypt$16384$8$1$<salt b64>$<hash b64>" } ] }
 *
 * `vcam bridge add-agent ID --agents-file FILE` creates a random secret, stores its hash and
 * prints the secret once. The file is re-read when it changes, so adding an agent needs no
 * restart.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, createHash, type ScryptOptions } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync, renameSync, statSync } from 'node:fs';
import { ConfigError } from '../common/errors.js';

const scrypt = (secret: string, salt: Buffer, keylen: number, o: ScryptOptions) => new Promise<Buffer>((resolve, reject) => scryptCb(secret, salt, keylen, o, (err, key) => (err ? reject(err) : resolve(key))));

const ID = /^[A-Za-z0-9._-]{1,64}$/;

export async function hashSecret(secret: string): Promise<string> {
  const N = 16384,
    r = 8,
    p = 1;
  const salt = randomBytes(16);
  const hash = await scrypt(secret, salt, 32, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [kind, N, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(secret, Buffer.from(salt, 'base64'), expected.length, { N: Number(N), r: Number(r), p: Number(p) });
  return timingSafeEqual(actual, expected);
}

interface AgentEntry {
  id: string;
  secretHash: string;
}

function parseAgentsFile(path: string): Map<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`agents file ${path}: ${(err as Error).message}`);
  }
  const list = (data as { agents?: unknown })?.agents;
  if (!Array.isArray(list)) throw new ConfigError(`agents file ${path}: expected {"agents": [{"id": …, "secretHash": …}]}`);
  const agents = new Map<string, string>();
  list.forEach((a: Partial<AgentEntry>, i) => {
    if (typeof a?.id !== 'string' || !ID.test(a.id)) throw new ConfigError(`agents file ${path}: entry ${i} has no valid "id" (1–64 of A-Z a-z 0-9 . _ -)`);
    if (typeof a.secretHash !== 'string' || !a.secretHash.startsWith('scrypt$')) {
      throw new ConfigError(`agents file ${path}: agent "${a.id}" needs a "secretHash" made by \`vcam bridge add-agent\` (plaintext secrets are not accepted)`);
    }
    agents.set(a.id, a.secretHash);
  });
  return agents;
}

/** Checks agent credentials against the agents file, re-reading it when it changes. */
export class AgentDirectory {
  private agents = new Map<string, string>();
  private mtimeMs = -1;
  /** Verified (id, secret digest) pairs: a reconnect storm must not cost one scrypt per agent. */
  private readonly verified = new Map<string, string>();

  constructor(private readonly path: string | undefined) {
    this.reload();
  }

  private reload(): void {
    if (!this.path) return;
    const mtime = statSync(this.path).mtimeMs;
    if (mtime === this.mtimeMs) return;
    this.agents = parseAgentsFile(this.path);
    this.mtimeMs = mtime;
    this.verified.clear();
  }

  get size(): number {
    return this.agents.size;
  }

  async check(id: string, secret: string | undefined): Promise<boolean> {
    try {
      this.reload();
    } catch {
      // Keep the last good list: a half-written file must not lock every agent out.
    }
    const stored = this.agents.get(id);
    if (!stored || secret === undefined) return false;
    const digest = createHash('sha256').update(secret).digest('hex');
    if (this.verified.get(id) === digest) return true;
    const ok = await verifySecret(secret, stored);
    if (ok) this.verified.set(id, digest);
    return ok;
  }
}

/** Adds (or replaces) an agent and returns its new secret. */
export async function addAgent(path: string, id: string): Promise<string> {
  if (!ID.test(id)) throw new ConfigError(`agent id "${id}" must be 1–64 of A-Z a-z 0-9 . _ -`);
  const entries: AgentEntry[] = existsSync(path) ? [...parseAgentsFile(path)].map(([i, h]) => ({ id: i, secretHash: h })) : [];
  const secret = randomBytes(24).toString('base64url');
  const next = [...entries.filter((e) => e.id !== id), { id, secretHash: await hashSecret(secret) }];
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ agents: next }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return secret;
}
