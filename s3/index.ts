/** The local S3 API server (S3Proxy): `vcam s3`, and for tests and development. */
export { LocalS3, startLocalS3, type LocalS3Options } from './server.js';
export { s3proxy, S3PROXY_VERSION } from './jars.js';
