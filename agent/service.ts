/** The agent as a running service: the agent itself plus its HTTP endpoint (ingest, health, metrics). */
import { listen, opsRoutes } from '../common/http.js';
import { createRegistry, type Registry } from '../common/metrics.js';
import { silentLogger, type Logger } from '../common/log.js';
import { createAgent, type Agent, type AgentOptions } from './agent.js';
import { ingestHandler } from './ingest.js';
import { instrumentAgent } from './telemetry.js';

export interface AgentServiceOptions extends AgentOptions {
  httpPort: number;
  httpHost?: string;
  maxBodyBytes?: number;
  /** Origins whose pages may post events (none by default). */
  allowedOrigins?: string[];
  /** Bearer token every ingest request must carry (from --ingest-token-file). */
  ingestToken?: string;
  drainMs?: number;
  logger?: Logger;
  registry?: Registry;
}

export interface AgentService {
  agent: Agent;
  port: number;
  registry: Registry;
  close(): Promise<void>;
}

export async function startAgentService(o: AgentServiceOptions): Promise<AgentService> {
  const log = o.logger ?? silentLogger;
  const registry = o.registry ?? createRegistry({ agent: o.id });
  const agent = createAgent(o);
  instrumentAgent(agent, registry, log);
  const health = () => ({ ok: true, agentId: agent.id, ...agent.stats() });
  const http = await listen(opsRoutes(registry, health, ingestHandler(agent, { maxBodyBytes: o.maxBodyBytes ?? 1024 * 1024, retryAfterS: 5, allowedOrigins: o.allowedOrigins, token: o.ingestToken })), o.httpPort, o.httpHost ?? '127.0.0.1');
  agent.start();
  log.info({ agentId: agent.id, port: http.port, mqttUrl: o.mqttUrl, dataDir: o.dataDir, backlog: agent.stats().backlogEvents }, 'agent started');
  let closing: Promise<void> | undefined;
  return {
    agent,
    port: http.port,
    registry,
    close() {
      closing ??= (async () => {
        log.info('shutting down: closing ingest, flushing the outbox to the broker');
        await http.close();
        await agent.close(o.drainMs);
        log.info({ backlog: agent.stats().backlogEvents }, 'agent stopped');
      })();
      return closing;
    },
  };
}
