/**
 * Structured logs (pino) on stderr, so that stdout stays free for a command's own output
 * (JSON reports, help). Synchronous writes: a kill -9 must not swallow the last lines.
 */
import { pino, type Logger } from 'pino';

export type { Logger };
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(component: string, level: string = process.env.VCAM_LOG_LEVEL ?? 'info', file?: string): Logger {
  return pino({ level, base: { component, pid: process.pid } }, pino.destination({ dest: file ?? 2, sync: true, mkdir: true }));
}

/** For library use and tests: a logger that writes nothing. */
export const silentLogger: Logger = pino({ level: 'silent' });
