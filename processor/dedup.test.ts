import { describe, expect, it } from 'vitest';
import { HotSet } from './dedup.js';

const MIN = 60_000;

describe('hot dedup tier', () => {
  it('answers only for event times within the horizon below the latest counted', () => {
    const hot = new HotSet(10 * MIN);
    hot.add('a', 100 * MIN);
    expect(hot.covers(95 * MIN)).toBe(true);
    expect(hot.covers(89 * MIN)).toBe(false);
    expect(hot.answer('a', 100 * MIN)).toBe('counted');
    expect(hot.answer('b', 100 * MIN)).toBe('new');
  });

  it('never claims to know what it did not load: below coveredFrom the cold tier must answer', () => {
    const rebuilt = new HotSet(10 * MIN);
    rebuilt.coveredFrom = 50 * MIN; // the rebuild read the counted events back to here and found nothing
    expect(rebuilt.covers(40 * MIN)).toBe(false);
    expect(rebuilt.covers(60 * MIN)).toBe(true);
    rebuilt.add('x', 55 * MIN);
    expect(rebuilt.covers(49 * MIN)).toBe(false);
  });

  it('drops whole minutes below the horizon and keeps its count right', () => {
    const hot = new HotSet(2 * MIN);
    for (let m = 0; m < 10; m++) hot.add(`e${m}`, m * MIN + 1);
    expect(hot.size).toBe(10);
    hot.evict();
    expect(hot.size).toBe(3);
    expect(hot.answer('e9', 9 * MIN + 1)).toBe('counted');
    expect(hot.answer('e6', 6 * MIN + 1)).toBe('new');
  });

  it('says counted only of an id it holds as a string (counted in the last 5 to 10 s, in that minute); of one it holds by fingerprint alone it says ask', () => {
    let now = 0;
    const hot = new HotSet(10 * MIN, () => now);
    hot.load('rebuilt', MIN);
    hot.add('fresh', MIN);
    expect([hot.answer('rebuilt', MIN), hot.answer('fresh', MIN), hot.answer('fresh', 2 * MIN)]).toEqual(['ask', 'counted', 'new']);
    now = 5_000;
    hot.evict();
    expect(hot.answer('fresh', MIN)).toBe('counted');
    now = 10_000;
    hot.evict();
    expect(hot.answer('fresh', MIN)).toBe('ask');
  });

  it('never misses an id it holds, across its tables growing from 4,096 slots to 524,288', () => {
    const hot = new HotSet(10 * MIN);
    const ids = Array.from({ length: 600_000 }, (_, i) => `cam-${i % 1_000}#${(i * 2_654_435_761).toString(16)}`);
    ids.forEach((id, i) => hot.load(id, (i % 2) * MIN));
    expect(ids.every((id, i) => hot.answer(id, (i % 2) * MIN) !== 'new')).toBe(true);
    // A fingerprint is of the id alone: the same id in another minute's bucket is not held.
    expect(hot.answer(ids[0]!, 5 * MIN)).toBe('new');
  });
});
