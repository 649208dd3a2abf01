/** The local S3 API server (S3Proxy) in a temp directory, with the bucket `lake`. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalS3, type LocalS3 } from '../../s3/index.js';

/** A server of its own for one test file (one JVM per file: two cores); `stop()` also removes its objects. */
export async function startTestS3(): Promise<LocalS3> {
  const dataDir = mkdtempSync(join(tmpdir(), 'vcam-s3-'));
  const s3 = await startLocalS3({ dataDir, bucket: 'lake' });
  const stop = s3.stop.bind(s3);
  return Object.assign(s3, {
    stop: async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}
