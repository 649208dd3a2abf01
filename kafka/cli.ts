/** `vcam kafka`: a local Apache Kafka broker in the foreground; `vcam kafka fetch` brings its jars. */
import { defineCommand } from '../common/config.js';
import { EXIT, parseOrHelp, runService } from '../common/cli.js';
import { VcamError } from '../common/errors.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { LocalKafka } from './broker.js';
import { fetchKafka, KAFKA_VERSION } from './jars.js';

export const kafkaCommand = defineCommand({
  name: 'vcam kafka',
  usage: 'vcam kafka --data-dir DIR [options]\n       vcam kafka fetch',
  summary:
    `A local Apache Kafka ${KAFKA_VERSION} broker on 127.0.0.1: one KRaft node (broker and controller),\n` +
    'its log in --data-dir (formatted on first use), the topics vcam.events and vcam.events.dlq\n' +
    'created through the admin API. For development, verify and `vcam up --kafka`; production runs\n' +
    'its own Kafka cluster. `vcam kafka fetch` copies the jars from Maven Central once (Java 17+ and\n' +
    'Maven needed); later runs need no network.',
  options: {
    dataDir: { type: 'string', required: true, env: 'VCAM_KAFKA_DATA_DIR', description: 'data directory (the broker log and its settings)' },
    port: { type: 'int', default: 9092, env: 'VCAM_KAFKA_PORT', description: 'client port on 127.0.0.1' },
    controllerPort: { type: 'int', default: 0, env: 'VCAM_KAFKA_CONTROLLER_PORT', description: 'KRaft controller port on 127.0.0.1 (0: any free port)' },
    partitions: { type: 'int', default: 16, env: 'VCAM_KAFKA_PARTITIONS', description: 'partitions of vcam.events when it is created (the processor group can use as many members)' },
    heap: { type: 'bytes', default: '512MiB', env: 'VCAM_KAFKA_HEAP', description: "the broker JVM's maximum heap" },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'info', description: 'log level' },
  },
});

const fetchCommand = defineCommand({
  name: 'vcam kafka fetch',
  usage: 'vcam kafka fetch',
  summary: `Copies Apache Kafka ${KAFKA_VERSION}'s jars from Maven Central into the cache ($VCAM_KAFKA_HOME, default ~/.cache/vcam/kafka-${KAFKA_VERSION}). Does nothing when they are there.`,
  options: {},
});

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'fetch') {
    const parsed = parseOrHelp(fetchCommand, argv.slice(1));
    if (typeof parsed === 'number') return parsed;
    if (parsed.positionals.length) throw new VcamError('USAGE', `unexpected argument "${parsed.positionals[0]}"; run \`vcam kafka fetch --help\``);
    await fetchKafka({ progress: (line) => process.stderr.write(`${line}\n`) });
    return EXIT.OK;
  }
  return runService(kafkaCommand, argv, async (c, positionals) => {
    if (positionals.length) throw new VcamError('USAGE', `unexpected argument "${positionals[0]}"; run \`vcam kafka --help\``);
    const log = createLogger('kafka', c.logLevel);
    const broker = new LocalKafka({
      dataDir: c.dataDir,
      port: c.port,
      controllerPort: c.controllerPort,
      partitions: c.partitions,
      heapMb: Math.max(128, Math.floor(c.heap / 2 ** 20)),
      onOutput: (line) => log.info({ broker: true }, line),
    });
    await broker.start();
    log.info({ bootstrap: broker.bootstrap, version: broker.version, dataDir: c.dataDir }, 'Apache Kafka serving');
    return { close: () => broker.stop() };
  });
}
