/** The agent against a real aedes broker on loopback, with real SQLite outboxes, driven over HTTP. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collect, startAedes, waitFor, whenQuiet } from '../test/helpers/brokers.js';
import { startAgentService, type AgentService, type AgentServiceOptions } from './index.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function agent(over: Partial<AgentServiceOptions> & { mqttUrl: string }): Promise<AgentService> {
  const s = await startAgentService({ id: 'gw-1', dataDir: mkdtempSync(join(tmpdir(), 'vcam-agent-')), httpPort: 0, reconnect: { initialMs: 50, maxMs: 200 }, ...over });
  cleanups.push(() => s.close());
  return s;
}

async function broker(port = 0) {
  const b = await startAedes(port);
  cleanups.push(() => b.stop());
  return b;
}

function post(svc: AgentService, body: string | Buffer, contentType = 'application/json') {
  return fetch(`http://127.0.0.1:${svc.port}/v1/events`, { method: 'POST', body, headers: { 'content-type': contentType } }).then(async (r) => ({
    status: r.status,
    headers: r.headers,
    body: (await r.json()) as { accepted: number; duplicates: number; eventIds: (string | null)[]; rejected?: { index: number; reason: string; message: string }[]; error?: string; message?: string },
  }));
}

const base = Date.now() - 60_000;
const ev = (i: number, extra: object = {}) => ({ deviceId: `cam-${i % 7}`, geoId: i % 5, ts: base + i, type: i % 2 ? 'person' : 'vehicle', ...extra });

describe('agent → aedes', () => {
  it('delivers every posted event (single, array, NDJSON) with the ids it returned, and ids are stable across re-sends', async () => {
    const b = await broker();
    const sub = await collect(b.url);
    cleanups.push(() => sub.stop());
    const svc = await agent({ mqttUrl: b.url });

    const ids: string[] = [];
    const one = await post(svc, JSON.stringify(ev(0, { eventId: 'cam-own-id' })));
    expect(one.status).toBe(202);
    expect(one.body.eventIds).toEqual(['cam-0:cam-own-id']);
    ids.push(...(one.body.eventIds as string[]));
    const arr = await post(svc, JSON.stringify(Array.from({ length: 500 }, (_, i) => ev(i + 1))));
    expect(arr.status).toBe(202);
    ids.push(...(arr.body.eventIds as string[]));
    const nd = await post(svc, Array.from({ length: 499 }, (_, i) => JSON.stringify(ev(i + 501))).join('\n') + '\n', 'application/x-ndjson');
    expect(nd.status).toBe(202);
    ids.push(...(nd.body.eventIds as string[]));
    expect(new Set(ids).size).toBe(1000);

    await sub.waitFor(() => sub.events.length >= 1000, 15_000, '1000 events at the subscriber');
    expect(new Set(sub.events.map((e) => e.eventId))).toEqual(new Set(ids));
    expect(sub.events.every((e) => e.agentId === 'gw-1' && e.receivedAt > 0)).toBe(true);
    expect(sub.events.map((e) => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    await waitFor(() => svc.agent.stats().backlogEvents === 0, 5_000, 'outbox to empty after PUBACKs');

    // A camera retrying the same events later gets the same ids, and they travel again under them.
    const again = await post(svc, JSON.stringify([ev(0, { eventId: 'cam-own-id' }), ev(1), ev(700, { ts: new Date(base + 700).toISOString() })]));
    expect(again.body.eventIds).toEqual([ids[0], ids[1], ids[700]]);
    await sub.waitFor(() => sub.events.length >= 1003, 10_000, 're-sent events');
    expect(sub.events.slice(1000).map((e) => e.eventId)).toEqual([ids[0], ids[1], ids[700]]);
  });

  it('collapses a camera retry while the first copy still waits in the outbox', async () => {
    const svc = await agent({ mqttUrl: 'mqtt://127.0.0.1:1' });
    const first = await post(svc, JSON.stringify([ev(1), ev(2)]));
    const retry = await post(svc, JSON.stringify([ev(2), ev(3)]));
    expect(retry.body.eventIds[0]).toBe(first.body.eventIds[1]);
    expect(retry.body.duplicates).toBe(1);
    expect(svc.agent.stats().backlogEvents).toBe(3);
  });

  it('refuses bad input with reasons, keeps the valid events of the same request, and keeps serving', async () => {
    const b = await broker();
    const sub = await collect(b.url);
    cleanups.push(() => sub.stop());
    const svc = await agent({ mqttUrl: b.url, maxBodyBytes: 64 * 1024 });

    const mixed = await post(svc, JSON.stringify([ev(1), { deviceId: 'cam-1', ts: base, type: 'x' }, ev(2, { geoId: 'nine' }), 'str', ev(3, { colour: 'red' }), ev(4)]));
    expect(mixed.status).toBe(400);
    expect(mixed.body.accepted).toBe(2);
    expect(mixed.body.rejected!.map((r) => [r.index, r.reason])).toEqual([
      [1, 'missing_field'],
      [2, 'wrong_type'],
      [3, 'not_an_object'],
      [4, 'unknown_field'],
    ]);
    expect(mixed.body.rejected![0]!.message).toMatch(/geoId/);
    expect(mixed.body.eventIds.filter(Boolean)).toHaveLength(2);

    const nd = await post(svc, `${JSON.stringify(ev(5))}\n{not json\n${JSON.stringify(ev(6))}\n`, 'application/x-ndjson');
    expect(nd.status).toBe(400);
    expect(nd.body.rejected).toEqual([{ index: 1, reason: 'invalid_json', message: expect.stringMatching(/line 2 is not valid JSON/) }]);
    expect(nd.body.accepted).toBe(2);

    const malformed = await post(svc, '{"deviceId": "cam-1", ');
    expect([malformed.status, malformed.body.error]).toEqual([400, 'INVALID_JSON']);
    const random = await post(svc, Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256)));
    expect(random.status).toBe(400);
    const empty = await post(svc, '');
    expect([empty.status, empty.body.error]).toEqual([400, 'INVALID_JSON']);
    const huge = await post(svc, JSON.stringify(Array.from({ length: 2000 }, (_, i) => ev(i))));
    expect([huge.status, huge.body.error]).toEqual([413, 'BODY_TOO_LARGE']);
    const xml = await post(svc, '<event/>', 'application/xml');
    expect(xml.status).toBe(415);
    const get = await fetch(`http://127.0.0.1:${svc.port}/v1/events`);
    expect(get.status).toBe(405);

    const after = await post(svc, JSON.stringify(ev(7)));
    expect(after.status).toBe(202);
    const ndjsonOk = await post(svc, `${JSON.stringify(ev(8))}\n`, 'application/x-ndjson');
    expect(ndjsonOk.status).toBe(202);
    await sub.waitFor(() => sub.events.length >= 6, 10_000, 'the valid events');
    expect(await whenQuiet(() => sub.events.map((e) => e.ts - base).sort((a, b) => a - b), 300)).toEqual([1, 4, 5, 6, 7, 8]);

    const metrics = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="invalid_json",agent="gw-1"\} 4/);
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="body_too_large",agent="gw-1"\} 1/);
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="missing_field",agent="gw-1"\} 1/);
    expect(metrics).toMatch(/vcam_agent_events_published_total\{agent="gw-1"\} 6/);
  });

  it('refuses what a web page can send (text/plain, forms, no content type: 415; a foreign Origin: 403) and stores none of it', async () => {
    const b = await broker();
    const svc = await agent({ mqttUrl: b.url, allowedOrigins: ['https://ops.example'] });
    const url = `http://127.0.0.1:${svc.port}/v1/events`;
    const body = JSON.stringify(ev(1, { eventId: 'page-injected' }));
    const send = (headers: Record<string, string>, payload: string | Blob = body) =>
      fetch(url, { method: 'POST', body: payload, headers }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error: string; message: string } }));
    // The three content types a cross-site "simple" request may carry, and none at all (a Blob without a type).
    for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await send({ 'content-type': type });
      expect([r.status, r.body.error], type).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
      expect(r.body.message).toMatch(/not accepted .*send application\/json or application\/x-ndjson/);
    }
    const untyped = await send({}, new Blob([body]));
    expect([untyped.status, untyped.body.message]).toEqual([415, expect.stringMatching(/without a content type is not accepted/)]);
    const foreign = await send({ 'content-type': 'application/json', origin: 'https://evil.example' });
    expect([foreign.status, foreign.body.error]).toEqual([403, 'FORBIDDEN_ORIGIN']);
    expect(foreign.body.message).toMatch(/cross-site request from https:\/\/evil.example refused/);
    expect(svc.agent.stats().backlogEvents).toBe(0);
    // An allowed origin and a plain JSON post both go through.
    expect((await send({ 'content-type': 'application/json', origin: 'https://ops.example' })).status).toBe(202);
    const metrics = await svc.registry.metrics();
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="unsupported_media_type",agent="gw-1"\} 4/);
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="forbidden_origin",agent="gw-1"\} 1/);
  });

  it('with an ingest token, refuses a missing or wrong bearer token with 401 and takes the right one', async () => {
    const b = await broker();
    const token = 'f3b1c0ffee5eed5a1ad5a1ad5eed0001';
    const svc = await agent({ mqttUrl: b.url, ingestToken: token });
    const send = (auth?: string) => fetch(`http://127.0.0.1:${svc.port}/v1/events`, { method: 'POST', body: JSON.stringify(ev(2)), headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } });
    for (const auth of [undefined, 'Bearer wrong-token-of-some-length', `Basic ${token}`, `Bearer ${token}x`]) {
      const r = await send(auth);
      expect(r.status, String(auth)).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect(svc.agent.stats().backlogEvents).toBe(0);
    expect((await send(`Bearer ${token}`)).status).toBe(202);
  });

  it('holds the backlog while the broker is down and drains it in sequence order when it returns', async () => {
    const b = await broker();
    const port = b.port;
    const svc = await agent({ mqttUrl: b.url, batchMaxEvents: 50 });
    await waitFor(() => svc.agent.connected, 5_000, 'connection');
    await b.stop();
    await waitFor(() => !svc.agent.connected, 5_000, 'disconnect');

    for (let i = 0; i < 10; i++) {
      const r = await post(svc, JSON.stringify(Array.from({ length: 100 }, (_, j) => ev(i * 100 + j))));
      expect(r.status).toBe(202);
    }
    expect(await whenQuiet(() => svc.agent.stats().backlogEvents, 300)).toBe(1000);
    const health = (await (await fetch(`http://127.0.0.1:${svc.port}/healthz`)).json()) as { backlogEvents: number; connected: boolean };
    expect(health).toMatchObject({ backlogEvents: 1000, connected: false });

    const back = await broker(port);
    const sub = await collect(back.url);
    cleanups.push(() => sub.stop());
    await sub.waitFor(() => sub.events.length >= 1000, 20_000, 'the backlog to drain');
    const seqs = sub.events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(sub.events.map((e) => e.eventId)).size).toBe(1000);
    await waitFor(() => svc.agent.stats().backlogEvents === 0, 5_000, 'outbox to empty');
  });

  it('answers 503 with Retry-After when the outbox is full under the reject policy, and accepts again once it drains', async () => {
    const svc = await agent({ mqttUrl: 'mqtt://127.0.0.1:1', outboxMaxEvents: 100 });
    expect((await post(svc, JSON.stringify(Array.from({ length: 100 }, (_, i) => ev(i))))).status).toBe(202);
    const full = await post(svc, JSON.stringify([ev(100), ev(101)]));
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('5');
    expect(full.body.error).toBe('OUTBOX_FULL');
    expect(svc.agent.stats().backlogEvents).toBe(100);
    const metrics = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
    expect(metrics).toMatch(/vcam_agent_events_rejected_total\{reason="outbox_full",agent="gw-1"\} 2/);
    expect(metrics).toMatch(/vcam_agent_backlog_events\{agent="gw-1"\} 100/);
  });

  it('drops the oldest events when full under the drop-oldest policy and counts them', async () => {
    const svc = await agent({ mqttUrl: 'mqtt://127.0.0.1:1', outboxMaxEvents: 100, outboxFullPolicy: 'drop-oldest' });
    for (let i = 0; i < 3; i++) expect((await post(svc, JSON.stringify(Array.from({ length: 50 }, (_, j) => ev(i * 50 + j))))).status).toBe(202);
    expect(svc.agent.stats().backlogEvents).toBe(100);
    expect(svc.agent.outbox.peek(0, 1)[0]!.seq).toBe(51);
    const metrics = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
    expect(metrics).toMatch(/vcam_agent_events_dropped_total\{reason="overflow",agent="gw-1"\} 50/);
  });

  it('flushes the backlog to the broker on graceful shutdown', async () => {
    const b = await broker();
    const sub = await collect(b.url);
    cleanups.push(() => sub.stop());
    const svc = await agent({ mqttUrl: b.url });
    await waitFor(() => svc.agent.connected, 5_000, 'connection');
    const r = await post(svc, JSON.stringify(Array.from({ length: 300 }, (_, i) => ev(i))));
    expect(r.status).toBe(202);
    await svc.close();
    expect(svc.agent.stats().backlogEvents).toBe(0);
    await sub.waitFor(() => sub.events.length >= 300, 5_000, 'flushed events');
  });
});
