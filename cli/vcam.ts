/**
 * `vcam <command>`: one entry point for every component. Each command lives in its component's
 * cli.ts and is loaded only when asked for, so `vcam agent` never loads Kafka or ClickHouse code.
 */
import { exitWith, EXIT } from '../common/cli.js';
import { VcamError } from '../common/errors.js';

type Main = (argv: string[]) => Promise<number>;

interface Entry {
  summary: string;
  load?: () => Promise<Main>;
  /** The issue that brings a command that is not built yet. */
  pending?: string;
}

export const COMMANDS: Record<string, Entry> = {
  agent: { summary: 'camera-gateway agent: HTTP ingest, SQLite outbox, MQTT publish', load: async () => (await import('../agent/cli.js')).main },
  bridge: { summary: 'MQTT front door (embedded aedes) forwarding to Kafka', load: async () => (await import('../bridge/cli.js')).main },
  processor: { summary: 'Kafka consumer: dedup, geo join, aggregates into ClickHouse', load: async () => (await import('../processor/cli.js')).main },
  kafka: { summary: 'a local Apache Kafka broker (KRaft) on loopback; `vcam kafka fetch` brings its jars', load: async () => (await import('../kafka/cli.js')).main },
  s3: { summary: 'a local S3 API server (S3Proxy) on loopback for the archive; `vcam s3 fetch` brings its jar', load: async () => (await import('../s3/cli.js')).main },
  clickhouse: { summary: 'embedded ClickHouse (chDB) served over HTTP', load: async () => (await import('../clickhouse/cli.js')).serverMain },
  archive: { summary: 'raw events from ClickHouse into a Delta Lake table (local or S3), exactly once', load: async () => (await import('../archive/cli.js')).main },
  migrate: { summary: 'create or upgrade the vcam database in ClickHouse', load: async () => (await import('../clickhouse/cli.js')).migrateMain },
  geo: { summary: 'geo reference table: `vcam geo load FILE` (CSV or Parquet, local or s3://), `vcam geo export`', load: async () => (await import('../clickhouse/cli.js')).geoMain },
  sim: { summary: 'camera-fleet simulator writing a ground-truth ledger', load: async () => (await import('../simulator/cli.js')).simMain },
  up: { summary: 'the whole product on one machine (what `npm start` runs)', load: async () => (await import('./up.js')).main },
  verify: { summary: 'a whole stack on loopback, driven by the simulator, checked against its ground truth', load: async () => (await import('../simulator/cli.js')).verifyMain },
};

export function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, e]) => `  ${name.padEnd(12)}${e.summary}${e.pending ? '  (not available yet)' : ''}`);
  return `Usage: vcam <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun \`vcam <command> --help\` for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? EXIT.OK : EXIT.USAGE;
  }
  const entry = COMMANDS[name];
  if (!entry) throw new VcamError('USAGE', `unknown command "${name}"\n\n${usage()}`);
  if (!entry.load) throw new VcamError('NOT_IMPLEMENTED', `vcam ${name}: not available yet; it arrives with ${entry.pending}. Available now: ${available().join(', ')}.`);
  return (await entry.load())(rest);
}

export function available(): string[] {
  return Object.entries(COMMANDS)
    .filter(([, e]) => e.load)
    .map(([n]) => n);
}

/** Entry point of the `vcam` bin. */
export function run(): Promise<never> {
  return exitWith(() => main(process.argv.slice(2)));
}
