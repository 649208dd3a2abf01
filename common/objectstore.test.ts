/** The local-directory store: the ObjectStore contract, on files. */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { objectStoreContract } from '../test/helpers/objectstore.js';
import { LocalStore } from './objectstore.js';

const root = mkdtempSync(join(tmpdir(), 'vcam-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('LocalStore', () => {
  objectStoreContract((name) => new LocalStore(join(root, name)));

  it('keeps each object as a plain file under its root, leaving no temp files, and nothing outside it', async () => {
    const store = new LocalStore(join(root, 'files'));
    await Promise.all(Array.from({ length: 4 }, (_, i) => store.putIfAbsent('_delta_log/0.json', Buffer.from(String(i)))));
    expect(readdirSync(join(root, 'files', '_delta_log'))).toEqual(['0.json']);
    expect(store.url).toBe(`file://${join(root, 'files')}`);
    await expect(store.putIfAbsent('../escaped', Buffer.from('x'))).rejects.toThrow('is not a relative path');
    expect(existsSync(join(root, 'escaped'))).toBe(false);
  });
});
