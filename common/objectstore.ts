/**
 * Where the archive (a Delta Lake table) and reference files live: a local directory or an S3
 * bucket prefix. Two real implementations behind one small interface, because the Delta log's
 * commit needs exactly one primitive from both: put-if-absent (link(2) here, `If-None-Match: *`
 * on S3).
 *
 * Keys are relative to the store's root and use `/`; they never start with `/` or contain `..`.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VcamError } from './errors.js';

export interface StoredObject {
  key: string;
  size: number;
  /** Last modified, epoch ms. */
  modified: number;
}

export interface ObjectStore {
  /** For messages and logs: `file:///abs/dir` or `s3://bucket/prefix`. Never carries credentials. */
  readonly url: string;
  /** The object's bytes, or undefined when there is no such key. */
  get(key: string): Promise<Buffer | undefined>;
  /** Writes the object only if no object has this key; false when one does (nothing written). Atomic. */
  putIfAbsent(key: string, body: Buffer): Promise<boolean>;
  /** Uploads a local file as the object (overwriting), and returns its stored size. */
  putFile(key: string, path: string): Promise<number>;
  /** Every object whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<StoredObject[]>;
  /** Deletes the object; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
}

export function checkKey(key: string): string {
  if (key === '' || key.startsWith('/') || key.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new VcamError('USAGE', `object key "${key}" is not a relative path of plain names`);
  }
  return key;
}

/** A directory on this machine. */
export class LocalStore implements ObjectStore {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = `file://${root}`;
  }

  private path(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    const path = this.path(key);
    await fs.mkdir(dirname(path), { recursive: true });
    // Written whole beside it, then linked: link(2) fails if the name exists, so two writers
    // never both win and a reader never sees half a file.
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await fs.writeFile(tmp, body);
    try {
      await fs.link(tmp, path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async putFile(key: string, path: string): Promise<number> {
    const target = this.path(key);
    await fs.mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await pipeline(createReadStream(path), (await fs.open(tmp, 'w')).createWriteStream());
      await fs.rename(tmp, target);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return (await fs.stat(target)).size;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const path = join(dir, e.name);
        const key = relative(this.root, path).split(sep).join('/');
        if (e.isDirectory()) {
          if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || `${key}/`.startsWith(prefix)) await walk(path);
        } else if (e.isFile() && key.startsWith(prefix) && !e.name.endsWith('.tmp')) {
          const st = await fs.stat(path);
          out.push({ key, size: st.size, modified: st.mtimeMs });
        }
      }
    };
    await walk(this.root);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.path(key), { force: true });
  }
}
