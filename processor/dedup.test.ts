import { describe, expect, it } from 'vitest';
import { HotSet } from './dedup.js';

const MIN = 60_000;

describe('hot dedup tier', () => {
  it('answers only for event times within the horizon below the latest counted', () => {
    const hot = new HotSet(10 * MIN);
    hot.add('a', 100 * MIN);
    expect(hot.covers(95 * MIN)).toBe(true);
    expect(hot.covers(89 * MIN)).toBe(false);
    expect(hot.has('a', 100 * MIN)).toBe(true);
    expect(hot.has('b', 100 * MIN)).toBe(false);
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
    expect(hot.has('e9', 9 * MIN + 1)).toBe(true);
    expect(hot.has('e6', 6 * MIN + 1)).toBe(false);
  });
});
