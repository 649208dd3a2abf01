/**
 * Decodes one MQTT payload from an agent into the events to forward and the rejects for the
 * dead-letter topic. Never throws: whatever arrives, the answer is a decision per event.
 */
import { checkPipelineEvent, type PipelineEvent, type RejectReason } from '../common/contract.js';

export type BridgeRejectReason = RejectReason | 'invalid_payload' | 'agent_mismatch';

export interface Reject {
  reason: BridgeRejectReason;
  message: string;
  /** What to keep in the dead-letter record: the payload's bytes, or the event re-serialised. */
  value: Buffer;
}

export interface Decoded {
  events: PipelineEvent[];
  rejects: Reject[];
}

export function decodePayload(payload: Buffer, agentId: string, now = Date.now()): Decoded {
  let batch: unknown;
  try {
    batch = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return whole(payload, 'invalid_json', `payload is not valid JSON (${(err as Error).message})`);
  }
  if (batch === null || typeof batch !== 'object' || Array.isArray(batch)) {
    return whole(payload, 'invalid_payload', 'payload must be an object {"v":1,"agentId":…,"events":[…]}');
  }
  const { v, agentId: claimed, events } = batch as { v?: unknown; agentId?: unknown; events?: unknown };
  if (v !== undefined && v !== 1) return whole(payload, 'invalid_payload', `payload version ${JSON.stringify(v)} is not supported; this bridge speaks v1`);
  if (claimed !== agentId) return whole(payload, 'agent_mismatch', `payload agentId ${JSON.stringify(claimed)} is not the connected agent "${agentId}"`);
  if (!Array.isArray(events)) return whole(payload, 'invalid_payload', 'payload has no "events" array');

  const out: Decoded = { events: [], rejects: [] };
  for (const e of events) {
    const checked = checkPipelineEvent(e, now);
    if (!checked.ok) out.rejects.push({ reason: checked.reason, message: checked.message, value: reserialise(e) });
    else if (checked.event.agentId !== agentId) {
      out.rejects.push({ reason: 'agent_mismatch', message: `event agentId "${checked.event.agentId}" is not the connected agent "${agentId}"`, value: reserialise(e) });
    } else out.events.push(checked.event);
  }
  return out;
}

function whole(payload: Buffer, reason: BridgeRejectReason, message: string): Decoded {
  return { events: [], rejects: [{ reason, message, value: payload }] };
}

function reserialise(e: unknown): Buffer {
  return Buffer.from(JSON.stringify(e) ?? 'null');
}
