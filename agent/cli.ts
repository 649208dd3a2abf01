/** `vcam agent`: runs one camera-gateway agent. */
import { readFileSync } from 'node:fs';
import { defineCommand } from '../common/config.js';
import { ConfigError } from '../common/errors.js';
import { runService } from '../common/cli.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { AGENT_DEFAULTS } from './agent.js';
import { startAgentService } from './service.js';

export const agentCommand = defineCommand({
  name: 'vcam agent',
  summary: 'Receives camera events over HTTP (POST /v1/events), gives each a stable eventId, keeps them in a\n' + 'SQLite outbox and publishes them to the MQTT broker, deleting each only after its PUBACK.',
  options: {
    id: { type: 'string', required: true, env: 'VCAM_AGENT_ID', description: 'agent id (also its MQTT client id and topic)' },
    mqttUrl: { type: 'string', default: 'mqtt://127.0.0.1:1883', description: 'broker URL: mqtt://host:port or mqtts://host:port' },
    mqttUsername: { type: 'string', description: 'MQTT username (the bridge expects the agent id)' },
    mqttPassword: { type: 'string', secret: true, description: 'MQTT password (the agent secret)' },
    mqttProtocol: { type: 'string', choices: ['4', '5'], default: String(AGENT_DEFAULTS.mqttProtocol), description: 'MQTT protocol version: 4 (3.1.1) or 5' },
    mqttCa: { type: 'string', description: 'CA certificate file for mqtts://' },
    mqttCert: { type: 'string', description: 'client certificate file for mqtts://' },
    mqttKey: { type: 'string', description: 'client key file for mqtts://' },
    mqttInsecure: { type: 'boolean', default: false, description: 'accept a broker certificate that does not verify (development only)' },
    dataDir: { type: 'string', required: true, env: 'VCAM_AGENT_DATA_DIR', description: 'directory for the outbox (one agent id per directory)' },
    httpPort: { type: 'int', default: 8080, description: 'HTTP port for ingest, /healthz and /metrics (0 picks a free port)' },
    httpHost: { type: 'string', default: '127.0.0.1', description: 'HTTP listen address' },
    maxBodyBytes: { type: 'bytes', default: '1MiB', description: 'largest accepted request body' },
    ingestTokenFile: { type: 'string', description: 'file holding a token every POST /v1/events must carry as Authorization: Bearer <token> (set it whenever --http-host is not loopback)' },
    allowedOrigins: { type: 'list', description: 'origins (https://host:port,…) whose web pages may post events; requests from any other Origin are refused (none by default)' },
    outboxMaxEvents: { type: 'int', default: AGENT_DEFAULTS.outboxMaxEvents, description: 'outbox bound: events' },
    outboxMaxBytes: { type: 'bytes', default: '4GiB', description: 'outbox bound: bytes' },
    outboxMaxAge: { type: 'duration', default: '7d', description: 'events older than this are expired unsent (0 = never)' },
    outboxFullPolicy: { type: 'string', choices: ['reject', 'drop-oldest'], default: AGENT_DEFAULTS.outboxFullPolicy, description: 'when the outbox is full: refuse new events (503) or drop the oldest' },
    outboxSync: { type: 'string', choices: ['full', 'normal'], default: AGENT_DEFAULTS.outboxSync, description: 'SQLite synchronous: full survives power loss, normal survives process crashes' },
    batchMaxEvents: { type: 'int', default: AGENT_DEFAULTS.batchMaxEvents, description: 'most events in one MQTT publish' },
    batchMaxBytes: { type: 'bytes', default: '768KiB', description: "largest MQTT payload (under the bridge's --max-packet-bytes, 1 MiB by default)" },
    maxInFlight: { type: 'int', default: AGENT_DEFAULTS.maxInFlight, description: 'publishes awaiting PUBACK at once' },
    drainTimeout: { type: 'duration', default: '5s', description: 'on shutdown, how long to wait for the broker to acknowledge the backlog' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

export function main(argv: string[]): Promise<number> {
  return runService(agentCommand, argv, (c) => {
    const logger = createLogger('agent', c.logLevel);
    const ingestToken = c.ingestTokenFile === undefined ? undefined : readToken(c.ingestTokenFile);
    if (!ingestToken && !['127.0.0.1', '::1', 'localhost'].includes(c.httpHost)) logger.warn({ httpHost: c.httpHost }, 'ingest is open to the network without a token: anyone who reaches this port can post events (set --ingest-token-file)');
    return startAgentService({
      ...c,
      ingestToken,
      mqttProtocol: c.mqttProtocol === '5' ? 5 : 4,
      outboxMaxAgeMs: c.outboxMaxAge,
      drainMs: c.drainTimeout,
      logger,
      registry: createRegistry({ agent: c.id }, true),
    });
  });
}

function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`--ingest-token-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (token.length < 16) throw new ConfigError(`--ingest-token-file ${file}: the token must be at least 16 characters (e.g. openssl rand -hex 32 > ${file})`);
  return token;
}
