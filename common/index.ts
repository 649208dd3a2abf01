/** Shared plumbing: the event contract, config, logging, metrics, errors, retry. */
export * from './contract.js';
export * from './errors.js';
export * from './retry.js';
export { loadConfig, helpText, type Command, type Config, type OptionSpec, type Spec } from './config.js';
export { createLogger, silentLogger, type Logger } from './log.js';
export { createRegistry, LATENCY_BUCKETS } from './metrics.js';
