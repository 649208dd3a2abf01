import { describe, expect, it } from 'vitest';
import { accountFor } from './verify.js';

describe('verify: uncounted events are lost only when nothing in flight could still count them', () => {
  it('nothing uncounted: nothing lost, no problem', () => {
    expect(accountFor(0, { agentEvents: 5, kafkaRecords: 3 }, 60_000)).toEqual({ lost: 0 });
  });

  it('uncounted with the agents and Kafka empty: lost', () => {
    expect(accountFor(12, { agentEvents: 0, kafkaRecords: 0 }, 60_000)).toEqual({ lost: 12, problem: '12 events were lost' });
  });

  it('uncounted while Kafka still held records for the processors: behind, not lost', () => {
    const r = accountFor(1_000, { agentEvents: 0, kafkaRecords: 40 }, 120_000);
    expect(r.lost).toBeNull();
    expect(r.problem).toBe(
      '1000 events were not counted within the 120 s drain timeout while the pipeline still held events (0 in the agents; 40 Kafka records were not yet processed): it fell behind, and this run cannot tell how many, if any, were lost',
    );
  });

  it('uncounted while the agents still held events: behind, not lost', () => {
    expect(accountFor(7, { agentEvents: 7, kafkaRecords: 0 }, 60_000).lost).toBeNull();
  });

  it('uncounted with Kafka unreadable: cannot say, so not called lost', () => {
    const r = accountFor(7, { agentEvents: 0, kafkaRecords: null }, 60_000);
    expect(r.lost).toBeNull();
    expect(r.problem).toMatch(/Kafka's backlog could not be read/);
  });
});
