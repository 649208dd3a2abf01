/**
 * Kafka downstream: valid events to `vcam.events`, each on the partition of its deviceId (a
 * device's events, and any duplicate of one, land on one partition, in order). A send's events
 * for one partition go as one record, one event per line (header `format: ndjson`): kafkajs
 * costs about 20 µs per record on each side, which one record per event paid per event
 * (docs/architecture.md, "Records of many events"). Rejects go to `vcam.events.dlq`, one record
 * each, with the reason in headers. Sends use acks = all, and a publish is acknowledged to the
 * agent only when all of it is in Kafka.
 */
import { CompressionTypes, type Kafka, type Producer, type Message } from 'kafkajs';
import { Coalescer } from '../common/coalesce.js';
import { VcamError } from '../common/errors.js';
import { createKafka, NDJSON, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import { Counter, type Registry } from '../common/metrics.js';
import type { Downstream, ForwardBatch } from './downstream.js';
import { DevicePartitions } from './partitioner.js';

export interface KafkaDownstreamOptions extends KafkaClientOptions {
  /** kafkajs' idempotent producer: no duplicates from the producer's own retries. Needs a broker that supports it. */
  idempotent: boolean;
  compression: 'none' | 'gzip';
  /** kafkajs' own retries per send; the bridge retries failed sends again until they succeed. */
  sendRetries: number;
  sendTimeoutMs: number;
  /** How long a send that is not full waits for more publishes (Kafka's linger.ms); 0: none. */
  lingerMs?: number;
  eventsTopic?: string;
  dlqTopic?: string;
  /** Where `vcam_bridge_kafka_producer_renewals_total` is registered. */
  registry?: Registry;
}

/**
 * Upper bound on events (and dead letters) per sendBatch when coalescing; a single larger
 * publish still goes alone. It bounds a send's records: a partition's share of a send is one
 * record, and its size (up to 5,000 events of at most 1 MiB of publishes in all) stays under the
 * broker's 1 MiB message.max.bytes once compressed.
 */
const MAX_MESSAGES_PER_SEND = 5_000;

export class KafkaDownstream implements Downstream {
  readonly kind = 'kafka';
  private readonly kafka: Kafka;
  private readonly sends: Coalescer<ForwardBatch>;
  private producer: Producer;
  /** The last send failed after kafkajs' own retries: the broker may or may not have written it. */
  private inDoubt = false;
  private readonly renewals?: Counter;
  private readonly compression: CompressionTypes;
  private readonly eventsTopic: string;
  private readonly dlqTopic: string;
  private readonly partitions = new DevicePartitions();

  constructor(private readonly o: KafkaDownstreamOptions) {
    this.kafka = createKafka(o);
    this.producer = this.newProducer();
    this.compression = o.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.eventsTopic = o.eventsTopic ?? TOPICS.events;
    this.dlqTopic = o.dlqTopic ?? TOPICS.dlq;
    if (o.registry) {
      this.renewals = new Counter({
        name: 'vcam_bridge_kafka_producer_renewals_total',
        help: 'Idempotent producers replaced after a send whose outcome was unknown (its events may then be in Kafka twice; the processor counts them once)',
        registers: [o.registry],
      });
    }
    this.sends = new Coalescer(
      (batches) => this.send(batches),
      (b) => b.events.length + b.rejects.length,
      MAX_MESSAGES_PER_SEND,
      o.lingerMs ?? 0,
    );
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      idempotent: this.o.idempotent,
      // Idempotence in kafkajs requires one request in flight per broker; order per partition follows.
      maxInFlightRequests: this.o.idempotent ? 1 : undefined,
      allowAutoTopicCreation: false,
      // The default partitioning, without re-hashing a deviceId for every event.
      createPartitioner: this.partitions.createPartitioner,
      retry: { retries: this.o.sendRetries, initialRetryTime: 300, maxRetryTime: 10_000 },
    });
  }

  /**
   * The idempotent producer deduplicates by (producer id, partition, sequence numbers), and
   * kafkajs rolls a failed send's sequence numbers back. Its own retries re-send the same
   * batches, so a batch the broker did write is recognised. But once kafkajs gives up, the
   * bridge retries publishes as they come, grouped differently: the broker would then answer
   * OUT_OF_ORDER_SEQUENCE_NUMBER for ever, or, for a batch of the same size on the same
   * partition, take different events for the written batch's duplicate and drop them while the
   * agent gets its PUBACK. So after a failed send the next one goes under a new producer id:
   * at worst the unknown batch is in Kafka twice, and the processor counts by eventId.
   */
  private async send(batches: ForwardBatch[]): Promise<void> {
    if (this.inDoubt) {
      await this.producer.disconnect().catch(() => undefined);
      this.producer = this.newProducer();
      await this.producer.connect();
      this.inDoubt = false;
      this.renewals?.inc();
      this.o.logger.warn('a Kafka send failed with its outcome unknown; sending under a new producer id (its events may be in Kafka twice)');
    }
    try {
      await this.producer.sendBatch({ acks: -1, timeout: this.o.sendTimeoutMs, compression: this.compression, topicMessages: this.encode(batches) });
    } catch (err) {
      if (this.o.idempotent) this.inDoubt = true;
      throw err;
    }
  }

  async start(): Promise<void> {
    try {
      await this.producer.connect();
    } catch (err) {
      // kafkajs marks any connect that outlived its own retries as not retriable; what matters
      // to the bridge is whether waiting can help, and it cannot only for a refused login.
      const refused = (err as Error).name === 'KafkaJSSASLAuthenticationError';
      throw new VcamError('CONNECTION', `cannot connect to Kafka: ${(err as Error).message}`, { retriable: !refused, cause: err });
    }
  }

  /**
   * Coalesced (common/coalesce.ts): while one sendBatch is in flight, batches from other
   * publishes wait and go out together in the next one. Each caller still resolves only when
   * its own messages are acknowledged; a failed send fails every batch in it.
   */
  forward(batch: ForwardBatch): Promise<void> {
    if (batch.events.length === 0 && batch.rejects.length === 0) return Promise.resolve();
    return this.sends.push(batch);
  }

  /**
   * One record per partition, its events one per line. Before kafkajs has told the topic's
   * partition count (the first send of a bridge), one record per device instead, keyed by it:
   * kafkajs then routes it as it would route each of its events.
   */
  private encode(batches: ForwardBatch[]) {
    const lines = new Map<number | string, string[]>();
    const dead: Message[] = [];
    for (const batch of batches) {
      for (const e of batch.events) {
        const to = this.partitions.partitionOf(this.eventsTopic, e.deviceId) ?? e.deviceId;
        let group = lines.get(to);
        if (!group) lines.set(to, (group = []));
        group.push(JSON.stringify(e));
      }
      const receivedAt = String(batch.receivedAt);
      for (const r of batch.rejects) {
        dead.push({ key: batch.agentId, value: r.value, headers: { reason: r.reason, message: r.message, agentId: batch.agentId, mqttTopic: batch.mqttTopic, receivedAt } });
      }
    }
    const events: Message[] = [];
    const headers = { format: NDJSON };
    for (const [to, group] of lines) events.push(typeof to === 'number' ? { partition: to, key: null, value: group.join('\n'), headers } : { key: to, value: group.join('\n'), headers });
    const topicMessages = [];
    if (events.length) topicMessages.push({ topic: this.eventsTopic, messages: events });
    if (dead.length) topicMessages.push({ topic: this.dlqTopic, messages: dead });
    return topicMessages;
  }

  close(): Promise<void> {
    return this.producer.disconnect();
  }
}
