import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxOptions, type Pending } from './outbox.js';

const open: Outbox[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

function outbox(over: Partial<OutboxOptions> = {}, dataDir = mkdtempSync(join(tmpdir(), 'vcam-outbox-'))): Outbox {
  const o = new Outbox({ dataDir, agentId: 'gw-1', maxEvents: 1000, maxBytes: 1e9, maxAgeMs: 0, fullPolicy: 'reject', sync: 'full', ...over });
  open.push(o);
  return o;
}

function events(from: number, n: number, receivedAt = Date.now()): Pending[] {
  return Array.from({ length: n }, (_, i) => ({ eventId: `d:${from + i}`, receivedAt, body: JSON.stringify({ eventId: `d:${from + i}`, n: from + i }) }));
}

function reopen(o: Outbox, over: Partial<OutboxOptions> = {}): Outbox {
  o.close();
  open.splice(open.indexOf(o), 1);
  return outbox({ ...o.options, ...over }, o.options.dataDir);
}

describe('SQLite outbox', () => {
  it('commits appends and hands them out in sequence order', async () => {
    const o = outbox();
    await o.append(events(0, 3));
    await o.append(events(3, 2));
    const rows = o.peek(0, 10);
    expect(rows.map((r) => r.eventId)).toEqual(['d:0', 'd:1', 'd:2', 'd:3', 'd:4']);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(o.peek(3, 10).map((r) => r.seq)).toEqual([4, 5]);
  });

  it('group-commits concurrent appends and every one survives a reopen', async () => {
    const o = outbox();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => o.append(events(i * 10, 10))));
    expect(results.every((r) => r.stored === 10)).toBe(true);
    const again = reopen(o);
    expect(again.stats().events).toBe(500);
    expect(new Set(again.peek(0, 1000).map((r) => r.eventId)).size).toBe(500);
  });

  it('stores an eventId once while it waits (a camera retry collapses)', async () => {
    const o = outbox();
    expect(await o.append(events(0, 2))).toEqual({ stored: 2, duplicates: 0 });
    expect(await o.append(events(1, 2))).toEqual({ stored: 1, duplicates: 1 });
    expect(o.stats().events).toBe(3);
  });

  it('never reuses a sequence number, even after emptying and reopening', async () => {
    const o = outbox();
    await o.append(events(0, 3));
    expect(o.ack(1, 3)).toBe(3);
    expect(o.stats().events).toBe(0);
    const again = reopen(o);
    await again.append(events(100, 1));
    expect(again.peek(0, 10)[0]!.seq).toBe(4);
  });

  it('deletes exactly the acknowledged range', async () => {
    const o = outbox();
    await o.append(events(0, 6));
    expect(o.ack(2, 4)).toBe(3);
    expect(o.peek(0, 10).map((r) => r.seq)).toEqual([1, 5, 6]);
    expect(o.ack(2, 4)).toBe(0);
  });

  it('refuses new events when full under the reject policy and stores none of them', async () => {
    const o = outbox({ maxEvents: 5 });
    await o.append(events(0, 4));
    await expect(o.append(events(4, 2))).rejects.toMatchObject({ code: 'OUTBOX_FULL', retriable: true });
    expect(o.stats().events).toBe(4);
    await o.append(events(4, 1));
    expect(o.stats().events).toBe(5);
  });

  it('applies the byte bound too', async () => {
    const o = outbox({ maxBytes: 100 });
    const big = [{ eventId: 'x', receivedAt: Date.now(), body: 'y'.repeat(90) }];
    await o.append(big);
    await expect(o.append([{ eventId: 'z', receivedAt: Date.now(), body: 'y'.repeat(20) }])).rejects.toMatchObject({ code: 'OUTBOX_FULL' });
    expect(o.stats().bytes).toBe(90);
  });

  it('counts bytes as UTF-8 on the way in and out: emoji and accents leave no residue after acknowledgement, and a reopen agrees', async () => {
    const o = outbox();
    const attrs = { note: 'caméra 📷 near the gate 🚪', zone: '東口' };
    const items = Array.from({ length: 100 }, (_, i) => ({ eventId: `e:${i}`, receivedAt: Date.now(), body: JSON.stringify({ eventId: `e:${i}`, attrs }) }));
    await o.append(items);
    const utf8 = items.reduce((n, it) => n + Buffer.byteLength(it.body, 'utf8'), 0);
    expect(o.stats().bytes).toBe(utf8);
    const again = reopen(o);
    expect(again.stats().bytes).toBe(utf8);
    expect(again.ack(1, 60)).toBe(60);
    await again.append([items[0]!].map((it) => ({ ...it, eventId: 'e:new' })));
    expect(again.ack(61, 101)).toBe(41);
    expect(again.stats()).toMatchObject({ events: 0, bytes: 0 });
  });

  it('drops the oldest under the drop-oldest policy and reports how many', async () => {
    const o = outbox({ maxEvents: 5, fullPolicy: 'drop-oldest' });
    const dropped: number[] = [];
    o.on('dropped', (n, reason) => reason === 'overflow' && dropped.push(n));
    await o.append(events(0, 4));
    await o.append(events(4, 3));
    expect(dropped).toEqual([2]);
    expect(o.peek(0, 10).map((r) => r.eventId)).toEqual(['d:2', 'd:3', 'd:4', 'd:5', 'd:6']);
  });

  it('expires events older than the age bound', async () => {
    const o = outbox({ maxAgeMs: 60_000 });
    const now = Date.now();
    await o.append(events(0, 3, now - 120_000));
    await o.append(events(3, 2, now));
    let expired = 0;
    o.on('dropped', (n, reason) => reason === 'expired' && (expired += n));
    expect(o.expireOld(now)).toBe(3);
    expect(expired).toBe(3);
    expect(o.peek(0, 10).map((r) => r.eventId)).toEqual(['d:3', 'd:4']);
  });

  it('reports backlog size and the age of the oldest unsent event', async () => {
    const o = outbox();
    const now = Date.now();
    await o.append(events(0, 2, now - 5_000));
    const s = o.stats(now);
    expect(s.events).toBe(2);
    expect(s.oldestAgeMs).toBe(5_000);
    expect(s.bytes).toBe(o.peek(0, 10).reduce((n, r) => n + r.body.length, 0));
  });

  it('belongs to one agent id and one process', () => {
    const o = outbox();
    expect(() => new Outbox({ ...o.options })).toThrow(/in use by another agent process/);
    o.close();
    open.splice(open.indexOf(o), 1);
    expect(() => new Outbox({ ...o.options, agentId: 'gw-2' })).toThrow(/belongs to agent "gw-1"/);
  });
});
