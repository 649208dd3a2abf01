/**
 * The S3 store against a real S3 API (S3Proxy on loopback): the ObjectStore contract, listing
 * across pages, what a caller sees when the credentials are wrong or S3 is down, and the signer
 * against AWS's own published examples.
 */
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalS3 } from '../s3/index.js';
import { objectStoreContract } from '../test/helpers/objectstore.js';
import { startTestS3 } from '../test/helpers/s3.js';
import { ConfigError, VcamError } from './errors.js';
import { LocalStore } from './objectstore.js';
import { credentialsFrom, openStore, S3Store, signV4 } from './s3.js';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await startTestS3();
}, 60_000);
afterAll(() => s3?.stop());

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err as VcamError,
  );

describe('S3Store on S3Proxy', () => {
  objectStoreContract((name) => s3.store(`s3://lake/contract/${name}`));

  it('stores each object as the file basedir/bucket/prefix/key', async () => {
    const store = s3.store('s3://lake/t');
    expect(await store.putIfAbsent('_delta_log/00000000000000000000.json', Buffer.from('{"protocol":{}}\n'))).toBe(true);
    expect(readFileSync(join(s3.basedir, 'lake', 't', '_delta_log', '00000000000000000000.json'), 'utf8')).toBe('{"protocol":{}}\n');
    expect(store.url).toBe('s3://lake/t');
  });

  it('lists every page: 23 objects 4 to a page', async () => {
    const store = s3.store('s3://lake/pages', { maxKeys: 4 });
    const keys = Array.from({ length: 23 }, (_, i) => `p/${String(i).padStart(3, '0')}`);
    await Promise.all(keys.map((k) => store.putIfAbsent(k, Buffer.from(k))));
    await store.putIfAbsent('q/outside', Buffer.from('x'));
    const pages: string[] = [];
    const onRequest = (m: unknown) => {
      const path = (m as { request: ClientRequest }).request.path;
      if (path.includes('list-type=2')) pages.push(new URLSearchParams(path.split('?')[1]).get('continuation-token') ?? 'first');
    };
    diagnostics.subscribe('http.client.request.start', onRequest);
    try {
      expect((await store.list('p/')).map((o) => o.key)).toEqual(keys);
    } finally {
      diagnostics.unsubscribe('http.client.request.start', onRequest);
    }
    // ceil(23 / 4) requests, each after the first continuing where the last ended.
    expect(pages.length).toBe(6);
    expect(pages[0]).toBe('first');
    expect(new Set(pages).size).toBe(6);
    expect((await store.list('')).length).toBe(24);
  });

  it('ensureBucket creates a bucket, and a second call is fine', async () => {
    const store = s3.store('s3://second-bucket/x');
    await expect(store.putIfAbsent('k', Buffer.from('v'))).rejects.toThrow(`S3 bucket "second-bucket" does not exist at ${s3.endpoint}; create it first`);
    await store.ensureBucket();
    await store.ensureBucket();
    expect(await store.putIfAbsent('k', Buffer.from('v'))).toBe(true);
  });

  it('a wrong secret is refused with a clear, non-retriable error that does not show any secret', async () => {
    const wrong = 'not-the-secret-' + 'x'.repeat(20);
    const store = new S3Store('s3://lake/t', { endpoint: s3.endpoint, credentials: { accessKeyId: s3.identity, secretAccessKey: wrong } });
    const calls: [string, () => Promise<unknown>][] = [
      ['GET a', () => store.get('a')],
      ['PUT a (if absent)', () => store.putIfAbsent('a', Buffer.from('x'))],
      ['LIST ""', () => store.list('')],
      ['DELETE a', () => store.delete('a')],
    ];
    for (const [what, call] of calls) {
      const err = await failure(call());
      expect(err).toBeInstanceOf(VcamError);
      expect([err.code, err.retriable]).toEqual(['CONFIG_INVALID', false]);
      expect(err.message).toBe(
        `the S3 credentials were refused by ${s3.endpoint} (s3://lake/t, ${what}): SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.; check the access key id and secret`,
      );
      expect(err.message).not.toContain(wrong);
      expect(err.message).not.toContain(s3.credential);
    }
  });

  it('S3 down is a retriable error naming the endpoint; after a restart the same objects are there', async () => {
    const store = s3.store('s3://lake/down');
    expect(await store.putIfAbsent('k', Buffer.from('before'))).toBe(true);
    await s3.kill();
    try {
      const calls: [string, () => Promise<unknown>][] = [
        ['GET k', () => store.get('k')],
        ['PUT k2 (if absent)', () => store.putIfAbsent('k2', Buffer.from('x'))],
        ['LIST ""', () => store.list('')],
      ];
      for (const [what, call] of calls) {
        const err = await failure(call());
        expect(err).toBeInstanceOf(VcamError);
        expect([err.code, err.retriable]).toEqual(['CONNECTION', true]);
        expect(err.message).toBe(`S3 at ${s3.endpoint} (s3://lake/down, ${what}) could not be reached (ECONNREFUSED); try again`);
      }
    } finally {
      await s3.start();
    }
    expect((await store.get('k'))!.toString()).toBe('before');
  }, 60_000);
});

describe('signV4', () => {
  // AWS's worked examples ("Signature Calculations for the Authorization Header: Transferring
  // Payload in a Single Chunk", Amazon S3 API reference): same inputs, same signature.
  const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  const now = new Date('2013-05-24T00:00:00Z');
  const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const auth = (signedHeaders: string, signature: string) => `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=${signedHeaders}, Signature=${signature}`;

  it('GET Object', () => {
    const h = signV4({ method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: { range: 'bytes=0-9' }, payloadSha256: empty, region: 'us-east-1', credentials, now });
    expect(h.authorization).toBe(auth('host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'));
  });

  it('PUT Object', () => {
    const h = signV4({
      method: 'PUT',
      url: new URL('https://examplebucket.s3.amazonaws.com/test%24file.text'),
      headers: { date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
      payloadSha256: '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      region: 'us-east-1',
      credentials,
      now,
    });
    expect(h.authorization).toBe(auth('date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd'));
  });

  it('GET Bucket (List Objects): the query string is part of the signature', () => {
    const h = signV4({ method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2'), headers: {}, payloadSha256: empty, region: 'us-east-1', credentials, now });
    expect(h.authorization).toBe(auth('host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'));
  });

  it('signs a session token as x-amz-security-token', () => {
    const h = signV4({ method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: {}, payloadSha256: empty, region: 'us-east-1', credentials: { ...credentials, sessionToken: 'tok' }, now });
    expect(h['x-amz-security-token']).toBe('tok');
    expect(h.authorization).toContain('SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,');
  });
});

describe('credentialsFrom and openStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vcam-s3-creds-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };

  it('reads the file `vcam s3` writes', () => {
    expect(credentialsFrom({ file: file('s3.credentials', 'AWS_ACCESS_KEY_ID=id1\nAWS_SECRET_ACCESS_KEY=se/cr=et\n'), env: {} })).toEqual({ accessKeyId: 'id1', secretAccessKey: 'se/cr=et' });
  });

  it("reads an ~/.aws/credentials file's [default] section, or AWS_PROFILE's", () => {
    const ini = file('credentials', '[other]\naws_access_key_id = id-other\naws_secret_access_key = s-other\n\n[default]\naws_access_key_id = id-default\naws_secret_access_key = s-default\naws_session_token = tok\n');
    expect(credentialsFrom({ file: ini, env: {} })).toEqual({ accessKeyId: 'id-default', secretAccessKey: 's-default', sessionToken: 'tok' });
    expect(credentialsFrom({ file: ini, env: { AWS_PROFILE: 'other' } })).toEqual({ accessKeyId: 'id-other', secretAccessKey: 's-other' });
  });

  it('takes the standard environment variables when no file is given', () => {
    expect(credentialsFrom({ env: { AWS_ACCESS_KEY_ID: 'e1', AWS_SECRET_ACCESS_KEY: 'e2', AWS_SESSION_TOKEN: 'e3' } })).toEqual({ accessKeyId: 'e1', secretAccessKey: 'e2', sessionToken: 'e3' });
  });

  it('says both ways when there are none, and what a file lacks', () => {
    expect(() => credentialsFrom({ env: { AWS_ACCESS_KEY_ID: 'only-the-id' } })).toThrow(
      new ConfigError(
        'no S3 credentials: give a credentials file (AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines, as `vcam s3` writes, or an ~/.aws/credentials-style [default] section) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
      ),
    );
    const half = file('half', 'AWS_ACCESS_KEY_ID=x\n');
    expect(() => credentialsFrom({ file: half, env: {} })).toThrow(`the S3 credentials file ${half} has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`);
    expect(() => credentialsFrom({ file: join(dir, 'missing'), env: {} })).toThrow(`cannot read the S3 credentials file ${join(dir, 'missing')}: ENOENT`);
  });

  it('openStore: s3:// on S3 (AWS by region unless an endpoint is given), file:// URLs and paths on this disk, nothing else', () => {
    const credentials = { accessKeyId: 'a', secretAccessKey: 'b' };
    const aws = openStore('s3://bucket/some/prefix/', { region: 'eu-west-1', credentials }) as S3Store;
    expect([aws.constructor, aws.url, aws.bucket, aws.prefix, aws.endpoint]).toEqual([S3Store, 's3://bucket/some/prefix', 'bucket', 'some/prefix', 'https://s3.eu-west-1.amazonaws.com']);
    const local = openStore('s3://lake', { endpoint: s3.endpoint, env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } }) as S3Store;
    expect([local.url, local.prefix, local.endpoint]).toEqual(['s3://lake', '', s3.endpoint]);
    expect(openStore(`file://${dir}/t`)).toEqual(new LocalStore(`${dir}/t`));
    expect(openStore('relative/t')).toEqual(new LocalStore(join(process.cwd(), 'relative/t')));
    expect(() => openStore('gs://bucket/t')).toThrow(new ConfigError('"gs://bucket/t": the archive goes to s3://bucket/prefix, a file:// URL or a directory'));
    expect(() => openStore('s3://bucket/t', { env: {} })).toThrow(/^no S3 credentials/);
  });
});
