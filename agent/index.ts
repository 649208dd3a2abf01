/** The agent's public surface: embed it (`createAgent(...).record(events)`) or run it as a service. */
export { Agent, createAgent, AGENT_DEFAULTS, type AgentOptions, type AgentEvents, type RecordResult } from './agent.js';
export { startAgentService, type AgentService, type AgentServiceOptions } from './service.js';
export type { FullPolicy } from './outbox.js';
