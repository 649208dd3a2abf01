/** `vcam bridge`: the MQTT front door. `vcam bridge add-agent ID` manages the agents file. */
import { CLICKHOUSE_AUTH_OPTIONS, clickhouseCredentials } from '../common/clickhouse.js';
import { defineCommand } from '../common/config.js';
import { parseOrHelp, runService, EXIT } from '../common/cli.js';
import { VcamError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { addAgent } from './agents.js';
import { createProcessor } from '../processor/index.js';
import { KafkaDownstream } from './kafka.js';
import { startBridgeService } from './service.js';

export const bridgeCommand = defineCommand({
  name: 'vcam bridge',
  usage: 'vcam bridge [options]\n       vcam bridge add-agent <id> --agents-file <file>',
  summary:
    'Embedded MQTT broker for agents. Forwards every valid event to Kafka (invalid ones to the\n' +
    'dead-letter topic) and acknowledges a publish only once Kafka has all of it. Without\n' +
    '--kafka-brokers (single-node mode) the processor runs in this process and the PUBACK\n' +
    'follows its ClickHouse commit.',
  options: {
    mqttPort: { type: 'int', default: 1883, description: 'MQTT TCP port' },
    mqttHost: { type: 'string', default: '127.0.0.1', description: 'MQTT listen address' },
    mqttTlsPort: { type: 'int', description: 'MQTT over TLS port (needs --tls-cert and --tls-key)' },
    tlsCert: { type: 'string', description: 'server certificate file (PEM)' },
    tlsKey: { type: 'string', description: 'server key file (PEM)' },
    tlsCa: { type: 'string', description: 'CA file for client certificates (PEM)' },
    agentsFile: { type: 'string', description: 'agents and their secret hashes (see add-agent); re-read when it changes' },
    allowAnonymous: { type: 'boolean', default: false, description: 'development only: accept agents without credentials' },
    maxPacketBytes: { type: 'bytes', default: '1MiB', description: 'largest MQTT packet; a larger one closes the connection' },
    maxInFlightEvents: { type: 'int', default: 50_000, description: 'events awaiting Kafka across all agents before sockets stop being read' },
    kafkaBrokers: { type: 'list', description: 'Kafka bootstrap brokers host:port,… (without it: single-node mode, the processor runs in this process)' },
    clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'single-node mode: ClickHouse HTTP URL the in-process processor writes to' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    alertBaseline: { type: 'duration', default: '10m', description: 'single-node mode: a geo spike or drop is a minute compared with the mean of this many minutes before it' },
    hotHorizon: { type: 'duration', default: '10m', description: 'single-node mode: event-time span of the in-memory dedup tier (older duplicates are checked in ClickHouse)' },
    chunkInterval: {
      type: 'duration',
      default: '500ms',
      description: 'single-node mode: a chunk not full is written no sooner than this after the previous one started: fewer, larger ClickHouse writes under load, for up to this much PUBACK latency',
    },
    dedup: { type: 'boolean', default: true, description: 'single-node mode: deduplicate by eventId; --no-dedup breaks the no-double-counting promise on purpose (vcam verify --break dedup)' },
    kafkaClientId: { type: 'string', default: 'vcam-bridge', description: 'Kafka client id' },
    kafkaIdempotent: { type: 'boolean', default: true, description: 'idempotent producer (needs broker support)' },
    kafkaCompression: { type: 'string', choices: ['none', 'gzip'], default: 'gzip', description: 'compression of produced batches' },
    kafkaSendRetries: { type: 'int', default: 5, description: "kafkajs' retries per send before the bridge's own retry loop takes over" },
    kafkaSendTimeout: { type: 'duration', default: '30s', description: 'broker-side timeout for acks=all' },
    kafkaLinger: { type: 'duration', default: '50ms', description: "how long a Kafka send that is not full waits for more publishes (Kafka's linger.ms): larger, better-compressed batches for a little PUBACK latency" },
    kafkaTls: { type: 'boolean', default: false, description: 'connect to Kafka over TLS' },
    kafkaTlsCa: { type: 'string', description: 'CA file for Kafka TLS' },
    kafkaSaslMechanism: { type: 'string', choices: ['plain', 'scram-sha-256', 'scram-sha-512'], description: 'Kafka SASL mechanism' },
    kafkaSaslUsername: { type: 'string', description: 'Kafka SASL username' },
    kafkaSaslPassword: { type: 'string', secret: true, description: 'Kafka SASL password' },
    httpPort: { type: 'int', default: 9101, description: 'port for /healthz and /metrics' },
    httpHost: { type: 'string', default: '127.0.0.1', description: 'HTTP listen address' },
    drainTimeout: { type: 'duration', default: '10s', description: 'on shutdown, how long in-flight publishes may take to reach Kafka' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

const addAgentCommand = defineCommand({
  name: 'vcam bridge add-agent',
  usage: 'vcam bridge add-agent <id> --agents-file <file>',
  summary: 'Adds an agent (or gives it a new secret) and prints the secret once. Only its hash is stored.',
  options: { agentsFile: { type: 'string', required: true, description: 'the agents file to create or update' } },
});

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'add-agent') {
    const parsed = parseOrHelp(addAgentCommand, argv.slice(1));
    if (typeof parsed === 'number') return parsed;
    const [id, ...extra] = parsed.positionals;
    if (!id || extra.length) throw new VcamError('USAGE', 'usage: vcam bridge add-agent <id> --agents-file <file>');
    const secret = await addAgent(parsed.config.agentsFile, id);
    process.stdout.write(`${secret}\n`);
    process.stderr.write(`agent "${id}" added to ${parsed.config.agentsFile}; give it this secret (shown once) as --mqtt-username ${id} --mqtt-password <secret>\n`);
    return EXIT.OK;
  }
  return runService(bridgeCommand, argv, async (c, positionals) => {
    if (positionals.length) throw new VcamError('USAGE', `unexpected argument "${positionals[0]}"; run \`vcam bridge --help\``);
    if (!c.agentsFile && !c.allowAnonymous) throw new VcamError('USAGE', 'give --agents-file (see `vcam bridge add-agent`), or --allow-anonymous for development');
    const logger = createLogger('bridge', c.logLevel);
    const registry = createRegistry({ component: 'bridge' }, true);
    if (!c.kafkaBrokers?.length) {
      const downstream = createProcessor({
        clickhouseUrl: c.clickhouseUrl,
        ...clickhouseCredentials(c),
        dedup: c.dedup,
        hotHorizonMs: c.hotHorizon,
        chunkIntervalMs: c.chunkInterval,
        alerts: { baselineMinutes: Math.max(1, Math.round(c.alertBaseline / 60_000)) },
        logger: logger.child({ component: 'processor' }),
        registry,
      });
      return startBridgeService({ ...c, downstream, drainMs: c.drainTimeout, logger, registry });
    }
    const downstream = new KafkaDownstream({
      brokers: c.kafkaBrokers,
      clientId: c.kafkaClientId,
      logger,
      idempotent: c.kafkaIdempotent,
      compression: c.kafkaCompression,
      sendRetries: c.kafkaSendRetries,
      sendTimeoutMs: c.kafkaSendTimeout,
      lingerMs: c.kafkaLinger,
      tls: c.kafkaTls,
      tlsCa: c.kafkaTlsCa,
      saslMechanism: c.kafkaSaslMechanism,
      saslUsername: c.kafkaSaslUsername,
      saslPassword: c.kafkaSaslPassword,
      registry,
    });
    return startBridgeService({ ...c, downstream, drainMs: c.drainTimeout, logger, registry });
  });
}
