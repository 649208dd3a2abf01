/**
 * kafkajs' default partitioner, remembered per key.
 *
 * The default partitioner (Java-compatible murmur2 of the key, modulo the partition count) runs
 * the hash through kafkajs' 64-bit Long emulation and filters the partition list again for every
 * message; in the bridge's CPU profile that was 4 % of its busy time, while a bridge sees the
 * same deviceIds over and over. A miss asks the default partitioner itself, so a
 * device's events, and duplicates of them, land on exactly the partition they always did (the
 * processor's dedup is per partition and relies on it).
 */
import { Partitioners, type ICustomPartitioner } from 'kafkajs';

/** Keys remembered per topic before the memory starts over; far above a fleet's cameras per bridge. */
const MAX_KEYS = 100_000;

export const cachedKeyPartitioner: ICustomPartitioner = () => {
  const computed = Partitioners.DefaultPartitioner();
  const topics = new Map<string, { partitions: number; byKey: Map<string, number> }>();
  return (args) => {
    const { key, partition } = args.message;
    // Explicit partitions, Buffer keys and keyless messages (round robin) are not cacheable.
    if (typeof key !== 'string' || (partition !== undefined && partition !== null)) return computed(args);
    let t = topics.get(args.topic);
    // The answer depends on the partition count only: a topic that grows starts over.
    if (!t || t.partitions !== args.partitionMetadata.length || t.byKey.size >= MAX_KEYS) {
      t = { partitions: args.partitionMetadata.length, byKey: new Map() };
      topics.set(args.topic, t);
    }
    let p = t.byKey.get(key);
    if (p === undefined) t.byKey.set(key, (p = computed(args)));
    return p;
  };
};
