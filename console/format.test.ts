import { describe, expect, it } from 'vitest';
import { age, fit, ms, num, pct, sparkline } from './format.js';

describe('console formatting', () => {
  it('numbers, shares, ages and latencies read at a glance', () => {
    expect([num(0), num(12.34), num(1234), num(1_234_567), num(null)]).toEqual(['0', '12.3', '1,234', '1.23M', '–']);
    expect([pct(0.0123), pct(0.5), pct(undefined)]).toEqual(['1.23%', '50.0%', '–']);
    expect([age(4), age(185), age(7800), age(3 * 86400 + 4 * 3600), age(null)]).toEqual(['4s', '3m 05s', '2h 10m', '3d 4h', '–']);
    expect([ms(87.4), ms(12_345)]).toEqual(['87ms', '12.3s']);
  });

  it('sparklines scale to the largest value and keep the last points that fit', () => {
    expect(sparkline([0, 1, 2, 4, 8])).toBe('▁▂▃▅█');
    expect(sparkline([0, 0, 0])).toBe('▁▁▁');
    expect(sparkline([5, 1, 8], 2)).toBe('▂█');
  });

  it('fits text to a column, cutting with an ellipsis', () => {
    expect(fit('Lisbon Harbour', 8)).toBe('Lisbon …');
    expect(fit('42', 5, 'right')).toBe('   42');
  });
});
