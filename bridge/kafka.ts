/**
 * Kafka downstream: valid events to `vcam.events` keyed by deviceId (a device's events, and any
 * duplicate of one, land on one partition, in order), eventId and agentId in headers; rejects
 * to `vcam.events.dlq` with the reason in headers. One `sendBatch` per MQTT publish with
 * acks = all, so a publish is acknowledged to the agent only when all of it is in Kafka.
 */
import { CompressionTypes, type Producer, type Message } from 'kafkajs';
import { createKafka, TOPICS, type KafkaClientOptions } from '../common/kafka.js';
import type { Downstream, ForwardBatch } from './downstream.js';

export interface KafkaDownstreamOptions extends KafkaClientOptions {
  /** kafkajs' idempotent producer: no duplicates from the producer's own retries. Needs a broker that supports it. */
  idempotent: boolean;
  compression: 'none' | 'gzip';
  /** kafkajs' own retries per send; the bridge retries failed sends again until they succeed. */
  sendRetries: number;
  sendTimeoutMs: number;
  eventsTopic?: string;
  dlqTopic?: string;
}

export class KafkaDownstream implements Downstream {
  readonly kind = 'kafka';
  private readonly producer: Producer;
  private readonly compression: CompressionTypes;
  private readonly eventsTopic: string;
  private readonly dlqTopic: string;

  constructor(private readonly o: KafkaDownstreamOptions) {
    const kafka = createKafka(o);
    this.producer = kafka.producer({
      idempotent: o.idempotent,
      // Idempotence in kafkajs requires one request in flight per broker; order per partition follows.
      maxInFlightRequests: o.idempotent ? 1 : undefined,
      allowAutoTopicCreation: false,
      retry: { retries: o.sendRetries, initialRetryTime: 300, maxRetryTime: 10_000 },
    });
    this.compression = o.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.eventsTopic = o.eventsTopic ?? TOPICS.events;
    this.dlqTopic = o.dlqTopic ?? TOPICS.dlq;
  }

  start(): Promise<void> {
    return this.producer.connect();
  }

  async forward(batch: ForwardBatch): Promise<void> {
    const topicMessages = [];
    if (batch.events.length > 0) {
      topicMessages.push({
        topic: this.eventsTopic,
        messages: batch.events.map((e): Message => ({ key: e.deviceId, value: JSON.stringify(e), headers: { eventId: e.eventId, agentId: e.agentId } })),
      });
    }
    if (batch.rejects.length > 0) {
      const receivedAt = String(batch.receivedAt);
      topicMessages.push({
        topic: this.dlqTopic,
        messages: batch.rejects.map((r): Message => ({
          key: batch.agentId,
          value: r.value,
          headers: { reason: r.reason, message: r.message, agentId: batch.agentId, mqttTopic: batch.mqttTopic, receivedAt },
        })),
      });
    }
    if (topicMessages.length === 0) return;
    await this.producer.sendBatch({ acks: -1, timeout: this.o.sendTimeoutMs, compression: this.compression, topicMessages });
  }

  close(): Promise<void> {
    return this.producer.disconnect();
  }
}
