/** The bridge's public surface. */
export { Bridge, type BridgeOptions, type BridgeEvents } from './bridge.js';
export { startBridgeService, type BridgeService, type BridgeServiceOptions } from './service.js';
export { KafkaDownstream, type KafkaDownstreamOptions } from './kafka.js';
export type { Downstream, ForwardBatch } from './downstream.js';
export { addAgent, hashSecret, verifySecret } from './agents.js';
export { decodePayload, type Reject, type BridgeRejectReason } from './payload.js';
