/** The processor's view of itself stays bounded however long it runs. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { MAX_LOST_KEPT, StatusTracker } from './status.js';
import type { WriterEvents } from './writer.js';

describe('StatusTracker', () => {
  it('keeps only the newest offset gaps (data_loss alerts are sticky once opened), not every gap since start', () => {
    const tracker = new StatusTracker(new EventEmitter<WriterEvents>(), () => new Map());
    for (let i = 0; i < 5 * MAX_LOST_KEPT; i++) tracker.offsetGap(i % 16, i + 1);
    const lost = tracker.health().lostOffsets;
    expect(lost).toHaveLength(MAX_LOST_KEPT);
    expect(lost.at(-1)).toMatchObject({ partition: (5 * MAX_LOST_KEPT - 1) % 16, count: 5 * MAX_LOST_KEPT });
    expect(lost[0]).toMatchObject({ count: 4 * MAX_LOST_KEPT + 1 });
  });
});
