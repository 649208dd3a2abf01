/**
 * Typed errors, after kafkajs and @clickhouse/client: callers branch on `code` and ask
 * `retriable`, never parse message text. Every message is one sentence a person can act on.
 */
export type ErrorCode =
  'INVALID_EVENT' | 'INVALID_JSON' | 'BODY_TOO_LARGE' | 'UNSUPPORTED_MEDIA_TYPE' | 'OUTBOX_FULL' | 'OUTBOX_CLOSED' | 'CONFIG_INVALID' | 'USAGE' | 'NOT_IMPLEMENTED' | 'UNAVAILABLE' | 'CONNECTION' | 'TIMEOUT' | 'UNSAFE_REPLAY';

export class VcamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VcamError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

/** A user-facing configuration or flag mistake: the CLI prints the message and exits 2. */
export class ConfigError extends VcamError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
    this.name = 'ConfigError';
  }
}

export function isRetriable(err: unknown): boolean {
  return err instanceof VcamError ? err.retriable : false;
}
