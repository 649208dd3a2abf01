/**
 * What every ObjectStore must do, as tests run against each implementation (a local directory,
 * S3): the Delta log's commit rests on put-if-absent having exactly one winner.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { VcamError } from '../../common/errors.js';
import type { ObjectStore } from '../../common/objectstore.js';

/** `open(name)` gives a store of its own (a fresh directory or prefix) for each test. */
export function objectStoreContract(open: (name: string) => ObjectStore): void {
  it('put-if-absent: of 8 concurrent writers of one key exactly one wins, and its bytes are what is stored', async () => {
    const store = open('race');
    const key = '_delta_log/00000000000000000001.json';
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putIfAbsent(key, Buffer.from(`writer ${i}\n`))));
    expect(results.filter((won) => won).length).toBe(1);
    expect((await store.get(key))!.toString()).toBe(`writer ${results.indexOf(true)}\n`);
    expect(await store.putIfAbsent(key, Buffer.from('late'))).toBe(false);
    expect((await store.get(key))!.toString()).toBe(`writer ${results.indexOf(true)}\n`);
  });

  it('lists by prefix in key order with sizes; gets, overwrites with putFile and deletes', async () => {
    const store = open('listing');
    const keys = ['b/2', 'a/1', 'ab', 'a/10', '_delta_log/00000000000000000001.json', 'a/2', '_delta_log/00000000000000000000.json', 'a b/c'];
    for (const k of keys) expect(await store.putIfAbsent(k, Buffer.from(k.repeat(3)))).toBe(true);
    const sorted = ['_delta_log/00000000000000000000.json', '_delta_log/00000000000000000001.json', 'a b/c', 'a/1', 'a/10', 'a/2', 'ab', 'b/2'];
    const listed = await store.list('');
    expect(listed.map((o) => [o.key, o.size])).toEqual(sorted.map((k) => [k, 3 * Buffer.byteLength(k)]));
    expect(listed.every((o) => Math.abs(o.modified - Date.now()) < 60_000)).toBe(true);
    expect((await store.list('a/')).map((o) => o.key)).toEqual(['a/1', 'a/10', 'a/2']);
    expect((await store.list('a')).map((o) => o.key)).toEqual(['a b/c', 'a/1', 'a/10', 'a/2', 'ab']);
    expect((await store.list('_delta_log/0000000000000000000')).map((o) => o.key)).toEqual(sorted.slice(0, 2));
    expect(await store.list('nothing/')).toEqual([]);

    const dir = mkdtempSync(join(tmpdir(), 'vcam-putfile-'));
    try {
      const file = join(dir, 'part.parquet');
      const bytes = Buffer.alloc(3 << 20, 7);
      writeFileSync(file, bytes);
      expect(await store.putFile('a/1', file)).toBe(bytes.length);
      expect((await store.get('a/1'))!.equals(bytes)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    await store.delete('a/1');
    await store.delete('a/1');
    await store.delete('never/was');
    expect(await store.get('a/1')).toBe(undefined);
    expect(await store.get('never/was')).toBe(undefined);
    expect((await store.list('a/')).map((o) => o.key)).toEqual(['a/10', 'a/2']);
  });

  it('keeps keys with spaces, unicode and URL-special characters as they are', async () => {
    const store = open('names');
    const key = 'geo=Zürich Hbf/été 2026 (1)+x%41&y=€😀.parquet';
    expect(await store.putIfAbsent(key, Buffer.from('ü'))).toBe(true);
    expect((await store.get(key))!.toString()).toBe('ü');
    expect(await store.list('geo=Zürich Hbf/')).toEqual([{ key, size: 2, modified: expect.any(Number) as number }]);
    await store.delete(key);
    expect(await store.list('geo=')).toEqual([]);
  });

  it('refuses keys that are not relative paths of plain names', async () => {
    const store = open('keys');
    for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', '']) {
      const err = await store.putIfAbsent(key, Buffer.from('x')).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(VcamError);
      expect((err as VcamError).code).toBe('USAGE');
      expect((err as VcamError).message).toBe(`object key "${key}" is not a relative path of plain names`);
      await expect(store.get(key)).rejects.toThrow(`object key "${key}" is not a relative path of plain names`);
    }
    expect(await store.list('')).toEqual([]);
  });
}
