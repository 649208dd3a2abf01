import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { DevicePartitions } from './partitioner.js';

const meta = (n: number) => Array.from({ length: n }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }));
const args = (topic: string, partitions: number, key: string | Buffer | null, partition?: number): PartitionerArgs => ({
  topic,
  partitionMetadata: meta(partitions),
  message: { key, value: 'v', partition },
});
const keys = Array.from({ length: 500 }, (_, i) => `cam-${i}${i % 7 ? '' : '-é'}`);

describe('DevicePartitions', () => {
  it("gives kafkajs' default partition for every string key, also asked again and after the partition count changes", () => {
    const cached = new DevicePartitions().createPartitioner();
    const reference = Partitioners.DefaultPartitioner();
    for (const partitions of [16, 16, 3, 16, 1, 64]) {
      for (const topic of ['vcam.events', 'vcam.events.dlq']) {
        for (const key of keys) expect(cached(args(topic, partitions, key))).toBe(reference(args(topic, partitions, key)));
      }
    }
  });

  it('leaves explicit partitions and Buffer keys to the default partitioner', () => {
    const cached = new DevicePartitions().createPartitioner();
    const reference = Partitioners.DefaultPartitioner();
    expect(cached(args('t', 16, 'cam-1', 5))).toBe(5);
    expect(cached(args('t', 16, Buffer.from('cam-1')))).toBe(reference(args('t', 16, Buffer.from('cam-1'))));
    // A key first cached, then sent with an explicit partition, takes the explicit one.
    cached(args('t', 16, 'cam-2'));
    expect(cached(args('t', 16, 'cam-2', 7))).toBe(7);
  });

  it('tells a key’s partition once kafkajs has sent any record of the topic (an explicit partition too), under the count it saw last', () => {
    const partitions = new DevicePartitions();
    const send = partitions.createPartitioner();
    const reference = Partitioners.DefaultPartitioner();
    expect(partitions.partitionOf('vcam.events', 'cam-1')).toBeUndefined();
    send(args('vcam.events', 16, null, 3));
    for (const key of keys) expect(partitions.partitionOf('vcam.events', key)).toBe(reference(args('vcam.events', 16, key)));
    expect(partitions.partitionOf('vcam.events.dlq', 'cam-1')).toBeUndefined();
    send(args('vcam.events', 24, null, 3));
    for (const key of keys) expect(partitions.partitionOf('vcam.events', key)).toBe(reference(args('vcam.events', 24, key)));
  });
});
