/** Where `--archive-url` points, and the flags that reach an S3 one. */
import type { Spec } from '../common/config.js';
import type { ObjectStore } from '../common/objectstore.js';
import { openStore } from '../common/s3.js';

export const STORE_OPTIONS = {
  s3Endpoint: { type: 'string', env: 'VCAM_S3_ENDPOINT', description: 'S3 API endpoint for s3:// URLs (default AWS: https://s3.<region>.amazonaws.com); path-style requests' },
  s3Region: { type: 'string', default: 'us-east-1', env: 'AWS_REGION', description: 'S3 region (for request signing)' },
  s3CredentialsFile: {
    type: 'string',
    env: 'VCAM_S3_CREDENTIALS_FILE',
    description: 'file with AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=… lines, or an ~/.aws/credentials-style [default] section (else the standard AWS environment variables)',
  },
} as const satisfies Spec;

export function openArchiveStore(c: { archiveUrl: string; s3Endpoint?: string; s3Region?: string; s3CredentialsFile?: string }): ObjectStore {
  return openStore(c.archiveUrl, { endpoint: c.s3Endpoint, region: c.s3Region, credentialsFile: c.s3CredentialsFile });
}
