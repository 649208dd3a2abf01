// Minimal AWS SigV4 (path-style) for S3Proxy tests; node:crypto only.
import { createHash, createHmac } from 'node:crypto';
const sha = (b) => createHash('sha256').update(b).digest('hex');
const hmac = (k, s) => createHmac('sha256', k).update(s).digest();
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
export async function s3(method, endpoint, path, { body = Buffer.alloc(0), query = {}, headers = {}, id, secret, region = 'us-east-1' } = {}) {
  const url = new URL(endpoint);
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const canonPath = path.split('/').map(enc).join('/');
  const qs = Object.keys(query).sort().map((k) => `${enc(k)}=${enc(String(query[k]))}`).join('&');
  const h = { ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)])), host: url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': sha(body) };
  const names = Object.keys(h).sort();
  const creq = [method, canonPath, qs, names.map((n) => `${n}:${h[n].trim()}\n`).join(''), names.join(';'), h['x-amz-content-sha256']].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, sha(creq)].join('\n');
  const key = hmac(hmac(hmac(hmac('AWS4' + secret, day), region), 's3'), 'aws4_request');
  h.authorization = `AWS4-HMAC-SHA256 Credential=${id}/${scope}, SignedHeaders=${names.join(';')}, Signature=${createHmac('sha256', key).update(sts).digest('hex')}`;
  delete h.host;
  const res = await fetch(`${endpoint}${canonPath}${qs ? '?' + qs : ''}`, { method, headers: h, body: method === 'GET' || method === 'HEAD' ? undefined : body });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}
