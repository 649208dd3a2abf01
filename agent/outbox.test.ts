import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxOptions, type OutboxRow, type Pending } from './outbox.js';

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

  it('stores an eventId once while it waits (a camera retry collapses), again once acknowledged', async () => {
    const o = outbox();
    expect(await o.append(events(0, 2))).toEqual({ stored: 2, duplicates: 0 });
    expect(await o.append(events(1, 2))).toEqual({ stored: 1, duplicates: 1 });
    expect(await o.append([...events(5, 1), ...events(5, 1)])).toEqual({ stored: 1, duplicates: 1 });
    expect(o.stats().events).toBe(4);
    expect(o.ack(1, 1)).toBe(1);
    expect(await o.append(events(0, 2))).toEqual({ stored: 1, duplicates: 1 });
    const again = reopen(o);
    expect(await again.append(events(0, 3))).toEqual({ stored: 0, duplicates: 3 });
  });

  it('remembers at most idsKept waiting ids, the newest; an older retry is stored again', async () => {
    const o = outbox({ idsKept: 3 });
    await o.append(events(0, 5));
    expect(await o.append(events(2, 3))).toEqual({ stored: 0, duplicates: 3 });
    expect(await o.append(events(0, 2))).toEqual({ stored: 2, duplicates: 0 });
    expect(o.stats().events).toBe(7);
  });

  it('forgets the ids of events it drops, so their retries are stored', async () => {
    const o = outbox({ maxEvents: 2, fullPolicy: 'drop-oldest' });
    await o.append(events(0, 3));
    expect(o.peek(0, 10).map((r) => r.eventId)).toEqual(['d:1', 'd:2']);
    expect(await o.append(events(0, 1))).toEqual({ stored: 1, duplicates: 0 });
  });

  it('upgrades an outbox with a UNIQUE eventId index (before 2026-12-04) in place, keeping rows and seq', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'vcam-outbox-'));
    const db = new Database(join(dataDir, 'outbox.sqlite'));
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('agentId', 'gw-1');
      CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, received_at INTEGER NOT NULL, body TEXT NOT NULL);`);
    const insert = db.prepare('INSERT INTO outbox (event_id, received_at, body) VALUES (?, ?, ?)');
    for (const e of events(0, 5)) insert.run(e.eventId, e.receivedAt, e.body);
    db.exec('DELETE FROM outbox WHERE seq IN (1, 2, 5)');
    db.close();
    const o = outbox({}, dataDir);
    expect(o.peek(0, 10).map((r) => [r.seq, r.eventId])).toEqual([
      [3, 'd:2'],
      [4, 'd:3'],
    ]);
    expect(await o.append(events(3, 2))).toEqual({ stored: 1, duplicates: 1 });
    expect(o.peek(4, 10).map((r) => [r.seq, r.eventId])).toEqual([[6, 'd:4']]);
    const again = reopen(o);
    expect(await again.append(events(3, 3))).toEqual({ stored: 1, duplicates: 2 });
    expect(again.peek(6, 10).map((r) => r.seq)).toEqual([7]);
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

  it('acknowledges a sent range without reading it back, and reads it back when some of it was dropped while in flight: counts, bytes and retry collapsing stay exact', async () => {
    const sentOf = (rows: OutboxRow[]) => ({ ids: rows.map((r) => r.eventId), bytes: rows.reduce((n, r) => n + r.bytes, 0) });
    const o = outbox({ maxEvents: 8, fullPolicy: 'drop-oldest' });
    const body = (i: number) => JSON.stringify({ eventId: `d:${i}`, note: 'é'.repeat(i) });
    await o.append(Array.from({ length: 8 }, (_, i) => ({ eventId: `d:${i}`, receivedAt: Date.now(), body: body(i) })));
    const first = o.peek(0, 3);
    expect(first.map((r) => r.bytes)).toEqual([0, 1, 2].map((i) => Buffer.byteLength(body(i))));
    expect(o.ack(1, 3, sentOf(first))).toBe(3);
    expect(o.stats()).toMatchObject({ events: 5, bytes: [3, 4, 5, 6, 7].reduce((n, i) => n + Buffer.byteLength(body(i)), 0) });
    // Acknowledged ids are no longer waiting: a retry of one is stored again.
    expect(await o.append([{ eventId: 'd:0', receivedAt: Date.now(), body: body(0) }])).toEqual({ stored: 1, duplicates: 0 });

    // Sent, then the oldest dropped by the bound before the PUBACK.
    const second = o.peek(3, 4);
    await o.append([8, 9, 10].map((i) => ({ eventId: `d:${i}`, receivedAt: Date.now(), body: body(i) })));
    expect(o.peek(0, 1)[0]!.seq).toBe(5);
    expect(o.ack(4, 7, sentOf(second))).toBe(3);
    const left = o.peek(0, 100);
    expect(left.map((r) => r.eventId)).toEqual(['d:7', 'd:0', 'd:8', 'd:9', 'd:10']);
    expect(o.stats()).toMatchObject({ events: 5, bytes: left.reduce((n, r) => n + r.bytes, 0) });
    expect(await o.append([{ eventId: 'd:9', receivedAt: Date.now(), body: body(9) }])).toEqual({ stored: 0, duplicates: 1 });
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
