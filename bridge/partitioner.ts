/**
 * Which partition a deviceId's events go to: kafkajs' default partitioner (Java-compatible
 * murmur2 of the key, modulo the partition count), remembered per key.
 *
 * The bridge sends a partition's events of one send as one ndjson record (bridge/kafka.ts), so it
 * needs a device's partition before kafkajs sees the record, and it must be exactly the one a
 * record keyed by that deviceId would get: a device's events, and duplicates of them, always
 * land on the same partition (the processor's dedup is per partition). The count comes from
 * kafkajs itself: its partitioner is called with the topic's metadata for every record sent.
 *
 * Remembering the answer also saved 4 % of the bridge's CPU when every event was a record of
 * its own: the hash ran through kafkajs' 64-bit Long emulation for every message.
 */
import { Partitioners, type ICustomPartitioner, type PartitionerArgs } from 'kafkajs';

/** Keys remembered per topic before the memory starts over; far above a fleet's cameras per bridge. */
const MAX_KEYS = 100_000;

type PartitionMetadata = PartitionerArgs['partitionMetadata'];

export class DevicePartitions {
  private readonly topics = new Map<string, { metadata: PartitionMetadata; byKey: Map<string, number> }>();
  private readonly computed = Partitioners.DefaultPartitioner();

  /** For kafkajs' `createPartitioner`: the default partitioner's answers, and each topic's partition count learned. */
  readonly createPartitioner: ICustomPartitioner = () => (args) => {
    const { key, partition } = args.message;
    this.learn(args.topic, args.partitionMetadata);
    // Explicit partitions, Buffer keys and keyless messages (round robin) are not cacheable.
    if (typeof key !== 'string' || (partition !== undefined && partition !== null)) return this.computed(args);
    return this.partitionOf(args.topic, key)!;
  };

  /** The partition a record keyed `key` gets, or undefined before kafkajs has told the topic's partition count. */
  partitionOf(topic: string, key: string): number | undefined {
    const t = this.topics.get(topic);
    if (!t) return undefined;
    let p = t.byKey.get(key);
    if (p === undefined) {
      // Keyed records depend on the partition count alone (not on which partitions have leaders).
      p = this.computed({ topic, partitionMetadata: t.metadata, message: { key, value: null } });
      t.byKey.set(key, p);
    }
    return p;
  }

  private learn(topic: string, metadata: PartitionMetadata): void {
    const t = this.topics.get(topic);
    // The answer depends on the partition count only: a topic that grows starts over.
    if (!t || t.metadata.length !== metadata.length || t.byKey.size >= MAX_KEYS) this.topics.set(topic, { metadata, byKey: new Map() });
  }
}
