/**
 * The S3Proxy release vcam runs as its local S3 server, fetched from Maven Central by
 * `vcam s3 fetch` (Maven resolves s3/pom.xml: one shaded jar) into a per-version cache.
 */
import { join } from 'node:path';
import { mavenTool } from '../common/maven.js';
import { PACKAGE_ROOT } from '../common/paths.js';

export const S3PROXY_FETCH_HINT = 'run `vcam s3 fetch` (or `npm run s3:fetch`) once; it needs Java 17+ and Maven';

/** $VCAM_S3PROXY_HOME, else ~/.cache/vcam/s3proxy-<version>. */
export const s3proxy = mavenTool({ name: 'S3Proxy', pom: join(PACKAGE_ROOT, 's3', 'pom.xml'), versionProperty: 's3proxy.version', homeEnv: 'VCAM_S3PROXY_HOME', cacheName: 's3proxy', fetchHint: S3PROXY_FETCH_HINT });

export const S3PROXY_VERSION = s3proxy.version;
