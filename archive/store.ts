/** Where `--archive-url` points: a local directory or an S3 prefix, and the flags that reach it. */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../common/errors.js';
import { LocalStore, type ObjectStore } from '../common/objectstore.js';
import type { Spec } from '../common/config.js';

export const STORE_OPTIONS = {
  s3Endpoint: { type: 'string', env: 'VCAM_S3_ENDPOINT', description: 'S3 API endpoint for s3:// URLs (default AWS: https://s3.<region>.amazonaws.com); path-style requests' },
  s3Region: { type: 'string', default: 'us-east-1', env: 'AWS_REGION', description: 'S3 region (for request signing)' },
  s3CredentialsFile: { type: 'string', description: 'file with AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines (else the standard AWS environment variables)' },
} as const satisfies Spec;

export async function openArchiveStore(c: { archiveUrl: string; s3Endpoint?: string; s3Region?: string; s3CredentialsFile?: string }): Promise<ObjectStore> {
  const url = c.archiveUrl;
  if (url.startsWith('s3://')) {
    throw new ConfigError('s3:// archive URLs arrive with the S3 client (common/s3.ts)');
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('file://')) throw new ConfigError(`--archive-url ${url}: use a directory, file:///dir or s3://bucket/prefix`);
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return new LocalStore(isAbsolute(path) ? path : resolve(path));
}
