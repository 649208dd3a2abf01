import { describe, expect, it } from 'vitest';
import { isNdjson } from './kafka.js';

describe('isNdjson', () => {
  it('reads the header as kafkajs gives it (a Buffer) and only the value "ndjson"', () => {
    expect(isNdjson({ format: Buffer.from('ndjson') })).toBe(true);
    expect(isNdjson({ format: 'json' })).toBe(false);
    expect(isNdjson({ eventId: 'x' })).toBe(false);
    expect(isNdjson(undefined)).toBe(false);
  });
});
