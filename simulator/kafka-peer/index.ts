/**
 * Kafka test peer: a real-wire-protocol Kafka "cluster" for tests and `vcam verify --kafka`, backed by
 * librdkafka's mock cluster (see kafka-peer.c and docs/testing.md).
 *
 *   const peer = await startKafkaPeer();
 *   const kafka = new Kafka({ brokers: peer.brokers, ... });
 *   ...
 *   await peer.down(1); await peer.up(1);
 *   await peer.stop();
 *
 * The launcher binary is compiled on demand (needs `cc` and librdkafka-dev).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../common/paths.js';

const execFileP = promisify(execFile);

// The C source stays in the source tree (also when this module runs from dist/), and the
// binary is built next to it.
const HERE = path.join(PACKAGE_ROOT, 'simulator', 'kafka-peer');
const SOURCE = path.join(HERE, 'kafka-peer.c');
const BINARY = path.join(HERE, 'kafka-peer');

const INSTALL_HINT =
  'librdkafka-dev is not installed: run apt-get install librdkafka-dev';

export interface KafkaPeerOptions {
  /** Number of mock brokers (ids 1..N). Default 1. */
  brokers?: number;
  /** Partitions per pre-created topic. Default 16. */
  partitions?: number;
  /** Topics to pre-create. Default ['vcam.events', 'vcam.events.dlq']. */
  topics?: string[];
  /** Replication factor of the pre-created topics. Default 1. */
  replication?: number;
  /** How long to wait for the launcher to print BOOTSTRAP. Default 10 s. */
  startTimeoutMs?: number;
}

export interface KafkaPeer {
  /** Comma-separated bootstrap list, e.g. "127.0.0.1:40123,127.0.0.1:40125". */
  bootstrap: string;
  /** The bootstrap list split into host:port entries (kafkajs `brokers`). */
  brokers: string[];
  /** Make broker `id` (1-based, -1 = all) drop connections and refuse new ones. */
  down(id: number): Promise<void>;
  /** Let broker `id` accept connections again. */
  up(id: number): Promise<void>;
  /** Add `ms` of round-trip latency to broker `id` (0 = none). */
  rtt(id: number, ms: number): Promise<void>;
  /** Destroy the mock cluster and wait for the launcher to exit. */
  stop(): Promise<void>;
}

async function mtimeMs(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).mtimeMs;
  } catch {
    return undefined;
  }
}

let building: Promise<void> | undefined;

/**
 * Compile kafka-peer.c when the binary is missing or older than the source.
 * Compiles to a unique temp name and renames it into place, so concurrent
 * test files (separate vitest workers) never see a half-written binary.
 */
export async function ensureKafkaPeerBinary(): Promise<string> {
  building ??= (async () => {
    const [src, bin] = await Promise.all([mtimeMs(SOURCE), mtimeMs(BINARY)]);
    if (src === undefined) throw new Error(`kafka-peer: missing ${SOURCE}`);
    if (bin !== undefined && bin >= src) return;
    try {
      await fs.access('/usr/include/librdkafka/rdkafka_mock.h');
    } catch {
      throw new Error(`${INSTALL_HINT} (no /usr/include/librdkafka/rdkafka_mock.h)`);
    }
    const tmp = `${BINARY}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await execFileP('cc', ['-O2', '-o', tmp, SOURCE, '-lrdkafka'], { timeout: 120_000 });
      await fs.rename(tmp, BINARY);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      const e = err as { stderr?: string; message?: string };
      throw new Error(
        `kafka-peer: compiling ${SOURCE} failed (${INSTALL_HINT}; a C compiler is also needed):\n` +
          (e.stderr || e.message || String(err)),
      );
    }
  })();
  try {
    await building;
  } catch (err) {
    building = undefined; // allow a retry after e.g. installing the package
    throw err;
  }
  return BINARY;
}

export async function startKafkaPeer(opts: KafkaPeerOptions = {}): Promise<KafkaPeer> {
  const bin = await ensureKafkaPeerBinary();
  const args: string[] = [
    '--brokers', String(opts.brokers ?? 1),
    '--partitions', String(opts.partitions ?? 16),
    '--replication', String(opts.replication ?? 1),
  ];
  for (const t of opts.topics ?? []) args.push('--topic', t);

  const child: ChildProcess = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
  });
  child.stdin!.on('error', () => {
    /* EPIPE after the child died; surfaced through the exit handling below */
  });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((info) => {
    exitInfo = info;
    // Fail whoever is waiting for a line.
    const waiters = lineWaiters.splice(0);
    for (const w of waiters) w.reject(diedError());
  });

  const diedError = () =>
    new Error(
      `kafka-peer exited (code ${exitInfo?.code}, signal ${exitInfo?.signal})` +
        (stderr ? `; stderr:\n${stderr}` : ''),
    );

  // Line reader over stdout.
  const lines: string[] = [];
  const lineWaiters: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      const w = lineWaiters.shift();
      if (w) w.resolve(line);
      else lines.push(line);
    }
  });
  const nextLine = (): Promise<string> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (exitInfo) return Promise.reject(diedError());
    return new Promise((resolve, reject) => lineWaiters.push({ resolve, reject }));
  };

  const spawnError = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`kafka-peer: cannot spawn ${bin}: ${err.message}`)));
  });
  spawnError.catch(() => {});

  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  let first: string;
  try {
    first = await Promise.race([
      nextLine(),
      spawnError,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `kafka-peer did not print BOOTSTRAP within ${startTimeoutMs} ms` +
                  (stderr ? `; stderr:\n${stderr}` : ` (${INSTALL_HINT} if it is missing)`),
              ),
            ),
          startTimeoutMs,
        );
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const m = /^BOOTSTRAP (\S+)$/.exec(first);
  if (!m) {
    child.kill('SIGKILL');
    throw new Error(`kafka-peer: unexpected first line ${JSON.stringify(first)}; stderr:\n${stderr}`);
  }
  const bootstrap = m[1]!;
  const brokers = bootstrap.split(',');

  // Commands are answered strictly in order; serialise them.
  let queue: Promise<unknown> = Promise.resolve();
  const command = (cmd: string): Promise<void> => {
    const run = async () => {
      if (exitInfo) throw diedError();
      child.stdin!.write(cmd + '\n');
      const answer = await nextLine();
      if (answer === `OK ${cmd}`) return;
      if (answer.startsWith('ERR ')) throw new Error(`kafka-peer: ${cmd}: ${answer.slice(4)}`);
      throw new Error(`kafka-peer: ${cmd}: unexpected reply ${JSON.stringify(answer)}`);
    };
    const p = queue.then(run, run);
    queue = p.catch(() => {});
    return p;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (exitInfo) return;
      child.stdin!.end(); // EOF => clean shutdown
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      try {
        await exited;
      } finally {
        clearTimeout(killer);
      }
    })());

  const brokerId = (id: number) => {
    if (!Number.isInteger(id)) throw new Error(`kafka-peer: broker id must be an integer, got ${id}`);
    return id;
  };

  return {
    bootstrap,
    brokers,
    down: async (id) => command(`down ${brokerId(id)}`),
    up: async (id) => command(`up ${brokerId(id)}`),
    rtt: async (id, ms) => command(`rtt ${brokerId(id)} ${Math.max(0, Math.round(ms))}`),
    stop,
  };
}
