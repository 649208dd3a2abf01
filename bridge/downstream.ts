/**
 * Where the bridge sends what it accepted. Two real implementations exist: Kafka (production,
 * `kafka.ts`) and the processor in the same process (single-node mode, `createProcessor()`
 * from processor/). `forward` resolves only when the batch is safe downstream; only then does the
 * agent get its PUBACK.
 */
import type { PipelineEvent } from '../common/contract.js';
import type { Reject } from './payload.js';

export interface ForwardBatch {
  agentId: string;
  events: PipelineEvent[];
  rejects: Reject[];
  mqttTopic: string;
  receivedAt: number;
}

export interface Downstream {
  readonly kind: string;
  start(): Promise<void>;
  /** Resolves once every event and reject of the batch is durably accepted; throws otherwise. */
  forward(batch: ForwardBatch): Promise<void>;
  close(): Promise<void>;
}
