import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { cachedKeyPartitioner } from './partitioner.js';

const meta = (n: number) => Array.from({ length: n }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }));
const args = (topic: string, partitions: number, key: string | Buffer | null, partition?: number): PartitionerArgs => ({
  topic,
  partitionMetadata: meta(partitions),
  message: { key, value: 'v', partition },
});

describe('cachedKeyPartitioner', () => {
  it("gives kafkajs' default partition for every string key, also asked again and after the partition count changes", () => {
    const cached = cachedKeyPartitioner();
    const reference = Partitioners.DefaultPartitioner();
    const keys = Array.from({ length: 500 }, (_, i) => `cam-${i}${i % 7 ? '' : '-é'}`);
    for (const partitions of [16, 16, 3, 16, 1, 64]) {
      for (const topic of ['vcam.events', 'vcam.events.dlq']) {
        for (const key of keys) expect(cached(args(topic, partitions, key))).toBe(reference(args(topic, partitions, key)));
      }
    }
  });

  it('leaves explicit partitions and Buffer keys to the default partitioner', () => {
    const cached = cachedKeyPartitioner();
    const reference = Partitioners.DefaultPartitioner();
    expect(cached(args('t', 16, 'cam-1', 5))).toBe(5);
    expect(cached(args('t', 16, Buffer.from('cam-1')))).toBe(reference(args('t', 16, Buffer.from('cam-1'))));
    // A key first cached, then sent with an explicit partition, takes the explicit one.
    cached(args('t', 16, 'cam-2'));
    expect(cached(args('t', 16, 'cam-2', 7))).toBe(7);
  });
});
