/** The cold tier's look-up against the real ClickHouse engine, at the size a lagging chunk produces. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dt64 } from '../clickhouse/schema.js';
import { startClickHouse } from '../test/helpers/clickhouse.js';
import { pipelineEvents } from '../test/helpers/events.js';
import { ProcessorStore } from './store.js';

let ch: Awaited<ReturnType<typeof startClickHouse>>;
beforeAll(async () => {
  ch = await startClickHouse();
});
afterAll(() => ch?.stop());

describe('ProcessorStore.coldSeen', () => {
  it('answers for 20,000 events at once (1.5 MB of ids, beyond the 1 MiB a URL may hold) with exactly those counted before the offset', async () => {
    const events = pipelineEvents(20_000, { prefix: `a-long-camera-supplied-event-identifier-` });
    // Every third event was counted earlier in this partition, one more at a later offset.
    const counted = events.filter((_, i) => i % 3 === 0);
    await ch.client.insert({
      table: 'vcam.events',
      values: counted.map((e, i) => ({ event_id: e.eventId, device_id: e.deviceId, geo_id: e.geoId, ts: dt64(e.ts), type: e.type, agent_id: 'gw', received_at: dt64(e.receivedAt), processed_at: dt64(e.receivedAt), kafka_partition: 3, kafka_offset: i === 0 ? 99_999 : i })),
      format: 'JSONEachRow',
    });
    const seen = await new ProcessorStore(ch.client, 'vcam.events').coldSeen(3, 20_000n, events);
    expect(seen.size).toBe(counted.length - 1);
    expect(seen.has(counted[1]!.eventId)).toBe(true);
    expect(seen.has(counted[0]!.eventId)).toBe(false);
    expect(seen.has(events[1]!.eventId)).toBe(false);
  });
});
