import { describe, expect, it } from 'vitest';
import { pipelineEvents } from '../test/helpers/events.js';
import { decodeChunk } from './pipeline.js';

const DAY = 86_400_000;
const options = { lateAfterMs: 30_000, maxAgeMs: 29 * DAY };

describe('decodeChunk', () => {
  const now = Date.now();
  const [fresh, old] = pipelineEvents(2, { now, spanMs: 1_000 });
  old!.ts = now - 30 * DAY;
  const asKafka = [fresh!, old!].map((e, i) => ({ offset: BigInt(i), timestamp: now, value: Buffer.from(JSON.stringify(e)) }));
  const handedOver = [fresh!, old!].map((event, i) => ({ offset: BigInt(i), timestamp: now, value: null, event }));

  it('decides an event handed over already parsed (single-node) as it decides the same event as Kafka bytes', () => {
    const fromBytes = decodeChunk(asKafka, options);
    const fromEvents = decodeChunk(handedOver, options);
    expect(fromEvents).toEqual(fromBytes);
    expect(fromEvents[0]!.event).toBe(fresh);
    expect(fromEvents[1]!.dead).toMatchObject({ reason: 'too_old', agent_id: 'gw-1', payload: JSON.stringify(old) });
  });
});
