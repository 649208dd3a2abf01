/**
 * `vcam up` (what `npm start` runs): the product on one machine with embedded defaults —
 * embedded ClickHouse, the bridge in single-node mode with the processor in its process, one
 * local agent for real cameras, and the simulator at a modest rate — with vconsole in the
 * foreground on a terminal (a live per-geo summary otherwise). `--kafka` runs the Kafka-mode
 * topology instead: a local Apache Kafka broker, the bridge in Kafka mode and `vcam processor` as
 * its own process. `--clickhouse-url` points at a real ClickHouse instead; `--kafka-brokers` runs
 * the bridge against an existing Kafka (then run `vcam processor` next to it); `--no-sim` leaves
 * the fleet to real agents.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { startAgentService } from '../agent/index.js';
import { startArchiveService } from '../archive/index.js';
import { openStoreFrom, S3_OPTIONS } from '../common/s3.js';
import { addAgent, KafkaDownstream, startBridgeService } from '../bridge/index.js';
import { ClickHouseServer, migrate, secretPath } from '../clickhouse/index.js';
import { CLICKHOUSE_AUTH_OPTIONS, clickhouseCredentials } from '../common/clickhouse.js';
import { ensureSecretFile } from '../common/secrets.js';
import { runService } from '../common/cli.js';
import { VcamError } from '../common/errors.js';
import { defineCommand } from '../common/config.js';
import { createLogger, LOG_LEVELS } from '../common/log.js';
import { createRegistry } from '../common/metrics.js';
import { hasTerminal, startConsole } from '../console/index.js';
import { LocalKafka } from '../kafka/index.js';
import { createProcessor } from '../processor/index.js';
import { Child, geoCsv, loadSimGeos, SCENARIO_DEFAULTS, Simulation, type Progress, type Scenario } from '../simulator/index.js';

export const upCommand = defineCommand({
  name: 'vcam up',
  summary: 'Runs the product on this machine with embedded defaults: ClickHouse, bridge + processor, one agent.',
  options: {
    dataDir: { type: 'string', default: './vcam-data', description: 'where every component keeps its data' },
    httpPort: { type: 'int', default: 8080, description: "the local agent's ingest port" },
    mqttPort: { type: 'int', default: 1883, description: "the bridge's MQTT port" },
    clickhousePort: { type: 'int', default: 8123, description: 'the embedded ClickHouse HTTP port' },
    clickhouseUrl: { type: 'string', description: 'use this ClickHouse instead of the embedded one' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    kafka: { type: 'boolean', default: false, description: 'Kafka mode on this machine: a local Apache Kafka broker (Java 17+; `vcam kafka fetch` once), the bridge in Kafka mode, `vcam processor` as its own process' },
    kafkaPort: { type: 'int', default: 9092, description: "with --kafka: the local broker's port" },
    processorHttpPort: { type: 'int', default: 9102, description: "with --kafka: the processor's /healthz and /metrics port" },
    kafkaBrokers: { type: 'list', description: 'run the bridge against this Kafka instead of single-node mode (start `vcam processor` separately)' },
    archive: { type: 'boolean', default: true, description: 'archive raw events as a Delta Lake table (--no-archive: ClickHouse only)' },
    archiveUrl: { type: 'string', description: 'the archive table: a directory or s3://bucket/prefix (default <data-dir>/archive)' },
    ...S3_OPTIONS,
    archiveEvery: { type: 'duration', default: '1m', description: 'how often a batch is archived' },
    archiveRetention: { type: 'duration', default: '30d', description: 'event dates kept in the archive' },
    archiveHttpPort: { type: 'int', default: 9104, description: "the archiver's /healthz and /metrics port" },
    sim: { type: 'boolean', default: true, description: 'run the simulator (--no-sim: only real agents)' },
    simRate: { type: 'int', default: 200, description: 'simulator: camera sends per second' },
    simGeos: { type: 'int', default: 20, description: 'simulator: geos (their names are loaded into the geo table)' },
    simCameras: { type: 'int', default: 200, description: 'simulator: cameras' },
    simSeed: { type: 'int', default: 1, description: 'simulator: random seed' },
    console: { type: 'boolean', default: true, description: 'on a terminal, show vconsole in the foreground (q quits and stops everything); logs then go to <data-dir>/vcam-up.log' },
    summaryEvery: { type: 'duration', default: '5s', description: 'without the console: how often to print the live summary (0 = never)' },
    logLevel: { type: 'string', choices: LOG_LEVELS, default: 'warn', description: 'log level' },
  },
});

export function main(argv: string[]): Promise<number> {
  return runService(upCommand, argv, async (c) => {
    if (c.kafka && c.kafkaBrokers?.length) throw new VcamError('USAGE', '--kafka starts a local broker; --kafka-brokers uses an existing one: give one of them');
    const dataDir = resolve(c.dataDir);
    mkdirSync(dataDir, { recursive: true });
    const foreground = c.console && hasTerminal();
    const logFile = foreground ? join(dataDir, 'vcam-up.log') : undefined;
    const log = (name: string) => createLogger(name, c.logLevel, logFile);
    const closers: (() => Promise<unknown>)[] = [];
    const out = process.stdout;
    out.write(`vcam up — data in ${dataDir}\n`);

    let clickhouseUrl = c.clickhouseUrl;
    let auth = clickhouseCredentials(c);
    // Every component is handed the password by this file, never on a command line.
    let passwordFile = c.clickhousePasswordFile;
    if (!clickhouseUrl) {
      // The embedded ClickHouse authenticates as `vcam clickhouse` does: a password made once, kept in its directory.
      mkdirSync(join(dataDir, 'clickhouse'), { recursive: true });
      passwordFile = secretPath(join(dataDir, 'clickhouse'));
      auth = { clickhouseUser: 'default', clickhousePassword: ensureSecretFile(passwordFile) };
      const server = new ClickHouseServer({ dataDir: join(dataDir, 'clickhouse'), port: c.clickhousePort, user: auth.clickhouseUser, password: auth.clickhousePassword, logger: log('clickhouse') });
      await server.start();
      closers.push(() => server.close());
      clickhouseUrl = `http://127.0.0.1:${server.port}`;
    }
    // The client's own console logging would draw over the screen; failures surface as errors here.
    const ch = createClient({ url: clickhouseUrl, username: auth.clickhouseUser, password: auth.clickhousePassword, log: { level: ClickHouseLogLevel.OFF } });
    closers.push(() => ch.close());
    await migrate(ch);
    // A password given some other way reaches `vcam processor` the way it reached us: the environment.
    if (!passwordFile && auth.clickhousePassword) process.env.VCAM_CLICKHOUSE_PASSWORD = auth.clickhousePassword;
    if (auth.clickhouseUser) process.env.VCAM_CLICKHOUSE_USER = auth.clickhouseUser;
    const credentials = passwordFile ? ` (user ${auth.clickhouseUser ?? 'default'}, password in ${passwordFile})` : '';
    out.write(`  ClickHouse        ${clickhouseUrl}${c.clickhouseUrl ? '' : ' (embedded)'}${credentials}\n`);

    // The local agent's credentials live in the data directory; the secret is made once.
    const agentsFile = join(dataDir, 'agents.json');
    const secretFile = join(dataDir, 'agent-local.secret');
    if (!existsSync(secretFile)) writeFileSync(secretFile, await addAgent(agentsFile, 'local'), { mode: 0o600 });
    const secret = readFileSync(secretFile, 'utf8').trim();

    let brokers = c.kafkaBrokers ?? [];
    const metricsUrls: string[] = [];
    if (c.kafka) {
      const kafka = new LocalKafka({ dataDir: join(dataDir, 'kafka'), port: c.kafkaPort });
      await kafka.start();
      closers.push(() => kafka.stop());
      brokers = kafka.brokers;
      out.write(`  Kafka             ${kafka.bootstrap} (Apache Kafka ${kafka.version}, local; log ${join(dataDir, 'kafka', 'broker.log')})\n`);
      const processorUrl = `http://127.0.0.1:${c.processorHttpPort}`;
      const processor = new Child(
        'processor',
        ['processor', '--kafka-brokers', kafka.bootstrap, '--clickhouse-url', clickhouseUrl, ...(passwordFile ? ['--clickhouse-password-file', passwordFile] : []), '--http-port', String(c.processorHttpPort), '--log-level', c.logLevel],
        dataDir,
        `${processorUrl}/healthz`,
      );
      closers.push(() => processor.stop());
      await processor.healthy(120_000);
      metricsUrls.push(`${processorUrl}/metrics`);
      out.write(`  processor         ${processorUrl}/healthz (own process; log ${processor.logFile})\n`);
    }

    if (c.archive) {
      const store = openStoreFrom(c.archiveUrl ?? join(dataDir, 'archive'), c);
      const archive = await startArchiveService({
        clickhouseUrl,
        ...auth,
        store,
        everyMs: c.archiveEvery,
        retentionDays: Math.max(1, Math.round(c.archiveRetention / 86_400_000)),
        vacuumAfterMs: 7 * 86_400_000,
        maxLagMs: Math.max(15 * 60_000, 3 * c.archiveEvery),
        httpPort: c.archiveHttpPort,
        logger: log('archive'),
        registry: createRegistry({ component: 'archive' }),
      });
      closers.push(() => archive.close());
      metricsUrls.push(`http://127.0.0.1:${archive.httpPort}/metrics`);
      out.write(`  archive           ${store.url} (Delta Lake, every ${Math.round(c.archiveEvery / 1000)} s; /healthz on ${archive.httpPort}); --no-archive to turn off\n`);
    }

    const registry = createRegistry({ component: 'up' });
    const downstream = brokers.length
      ? new KafkaDownstream({ brokers, clientId: 'vcam-bridge', logger: log('bridge'), idempotent: true, compression: 'gzip', sendRetries: 5, sendTimeoutMs: 30_000, registry })
      : createProcessor({ clickhouseUrl, ...auth, logger: log('processor'), registry });
    const bridge = await startBridgeService({ mqttPort: c.mqttPort, agentsFile, downstream, logger: log('bridge'), registry });
    closers.push(() => bridge.close());
    out.write(`  bridge            mqtt://127.0.0.1:${bridge.mqttPort} → ${brokers.length ? `Kafka ${brokers.join(',')}` : 'processor (single-node) → ClickHouse'}\n`);

    const agent = await startAgentService({ id: 'local', dataDir: join(dataDir, 'agent-local'), httpPort: c.httpPort, mqttUrl: `mqtt://127.0.0.1:${bridge.mqttPort}`, mqttUsername: 'local', mqttPassword: secret, logger: log('agent') });
    closers.push(() => agent.close());
    out.write(`  agent "local"     http://127.0.0.1:${agent.port}/v1/events  (/healthz, /metrics)\n`);
    let simulation: Simulation | undefined;
    if (c.sim) {
      const scenario: Scenario = {
        ...SCENARIO_DEFAULTS,
        rate: c.simRate,
        geos: c.simGeos,
        cameras: Math.max(c.simCameras, c.simGeos),
        agents: 2,
        seed: c.simSeed,
        durationMs: Infinity,
        burstWarmupMs: 12 * 60_000,
        burstEveryMs: 15 * 60_000,
      };
      const sim = new Simulation({ scenario, mqttUrl: `mqtt://127.0.0.1:${bridge.mqttPort}`, dataDir: join(dataDir, 'sim'), agentsFile });
      const csv = join(dataDir, 'sim', 'geos.csv');
      await sim.register();
      writeFileSync(csv, geoCsv(sim.geos));
      await loadSimGeos(ch, sim.geos, csv);
      await sim.start();
      void sim.run();
      closers.push(() => sim.close());
      simulation = sim;
      out.write(`  simulator         ${c.simRate} events/s from ${scenario.cameras} cameras in ${scenario.geos} geos (geo names from ${csv}); --no-sim to turn off\n`);
    }
    out.write(`Try:  curl -s localhost:${agent.port}/v1/events -H 'content-type: application/json' -d '{"deviceId":"cam-1","geoId":7,"ts":'$(date +%s000)',"type":"person"}'\n`);

    // Last started, first stopped: the simulator, the agent, the bridge (draining into ClickHouse
    // or Kafka), the processor, Kafka, ClickHouse.
    const closeAll = async () => {
      for (const close of closers.reverse()) await close();
    };
    if (foreground) {
      out.write(`Logs: ${logFile}. Starting vconsole (q quits and stops everything)…\n`);
      const ui = await startConsole(ch, { clickhouseUrl, metricsUrls: [`http://127.0.0.1:${agent.port}/metrics`, ...metricsUrls], refreshMs: 1_000, ackAs: process.env.USER ?? 'operator' });
      // The screen goes first, so shutdown never draws over a closing stack; a crashed screen still shuts down.
      const done = ui.done.catch((err: Error) => log('up').error({ err: err.message }, 'console failed'));
      return {
        done,
        close: async () => {
          ui.unmount();
          await closeAll();
        },
      };
    }
    out.write(`Live summary below (\`vconsole --clickhouse-url ${clickhouseUrl}${passwordFile ? ` --clickhouse-password-file ${passwordFile}` : ''}\` shows more). Ctrl-C to stop.\n`);
    let timer: NodeJS.Timeout | undefined;
    if (c.summaryEvery > 0) {
      timer = setInterval(
        () =>
          void summary(ch, agent.agent.stats(), simulation?.progress()).then(
            (s) => out.write(s),
            (err) => out.write(`summary: ClickHouse unreachable (${(err as Error).message})\n`),
          ),
        c.summaryEvery,
      );
      timer.unref();
    }
    return {
      close: async () => {
        clearInterval(timer);
        await closeAll();
      },
    };
  });
}

/** Per-geo counts over the last minute and 5 minutes of event time, busiest first. */
async function summary(ch: ReturnType<typeof createClient>, agent: { backlogEvents: number; connected: boolean }, sim?: Progress): Promise<string> {
  const rows = await (
    await ch.query({
      query: `SELECT geo_id, any(g.geo_name) AS name,
                sumIf(events, bucket >= now() - INTERVAL 1 MINUTE) AS m1, sumIf(events, bucket >= now() - INTERVAL 5 MINUTE) AS m5
              FROM vcam.geo_10s AS a LEFT JOIN (SELECT geo_id, geo_name FROM vcam.geo FINAL) AS g USING geo_id
              WHERE bucket >= now() - INTERVAL 5 MINUTE GROUP BY geo_id ORDER BY m5 DESC LIMIT 10`,
      format: 'JSONEachRow',
    })
  ).json<{ geo_id: number; name: string; m1: number; m5: number }>();
  const lines = rows.map((r) => `  geo ${String(r.geo_id).padEnd(6)} ${(r.name || '(unknown)').padEnd(20)} 1m ${String(r.m1).padStart(7)}   5m ${String(r.m5).padStart(8)}`);
  const simLine = sim ? `, simulator ${sim.rateAchieved}/s (sent ${sim.sent}, backlog ${sim.backlog})` : '';
  return `${new Date().toISOString()}  agent ${agent.connected ? 'connected' : 'NOT CONNECTED'}, backlog ${agent.backlogEvents}${simLine}\n${lines.join('\n') || '  no events in the last 5 minutes'}\n`;
}
