/**
 * How every vcam command runs: parse config (or print --help), start, wait for SIGINT/SIGTERM,
 * shut down gracefully. Exit codes mean the same everywhere:
 *   0 ok · 1 failed at run time · 2 usage or configuration error · 69 not available (not built
 *   yet, or something it needs, such as Java, is missing)
 *   130/143 a second signal forced the exit before shutdown finished.
 */
import { loadConfig, type Command, type Config, type Spec } from './config.js';
import { ConfigError, VcamError } from './errors.js';

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, UNAVAILABLE: 69 } as const;

export interface Service {
  /** Resolves when the service has drained and released everything. */
  close(): Promise<void>;
  /** Resolves when the service ends by itself (an interactive screen the user quit). */
  done?: Promise<void>;
}

/**
 * Runs a long-lived service until a signal arrives. A second signal during shutdown exits at
 * once: an operator pressing Ctrl-C twice means it.
 */
export async function runService<S extends Spec>(cmd: Command<S>, argv: string[], start: (config: Config<S>, positionals: string[]) => Promise<Service>): Promise<number> {
  const loaded = parseOrHelp(cmd, argv);
  if (typeof loaded === 'number') return loaded;
  const service = await start(loaded.config, loaded.positionals);
  const signal = await new Promise<NodeJS.Signals | 'done'>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    void service.done?.then(
      () => resolve('done'),
      () => resolve('done'),
    );
  });
  const force = () => process.exit(signal === 'SIGINT' ? 130 : 143);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await service.close();
  return EXIT.OK;
}

export function parseOrHelp<S extends Spec>(cmd: Command<S>, argv: string[]): { config: Config<S>; positionals: string[] } | number {
  const loaded = loadConfig(cmd, argv);
  if (loaded.help) {
    process.stdout.write(loaded.text);
    return EXIT.OK;
  }
  return loaded;
}

/** Turns a command's outcome into an exit code and a one-line message a person can act on. */
export async function exitWith(run: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await run();
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof VcamError && err.code === 'USAGE')) {
      process.stderr.write(`error: ${err.message}\n`);
      code = EXIT.USAGE;
    } else if ((err as NodeJS.ErrnoException)?.code === 'EADDRINUSE') {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      process.stderr.write(`error: ${e.address ?? ''}:${e.port ?? '?'} is already in use by another process; pick another port (see --help)\n`);
      code = EXIT.USAGE;
    } else if (err instanceof VcamError && (err.code === 'NOT_IMPLEMENTED' || err.code === 'UNAVAILABLE')) {
      process.stderr.write(`${err.message}\n`);
      code = EXIT.UNAVAILABLE;
    } else {
      process.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`);
      code = EXIT.FAILURE;
    }
  }
  process.exit(code);
}
