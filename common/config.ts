/**
 * Configuration from flags, environment and a JSON file, in that precedence, with a generated
 * --help. Each command declares its options once; names map mechanically:
 *   option `mqttUrl` ⇄ flag `--mqtt-url` ⇄ env `VCAM_MQTT_URL` ⇄ file key `mqttUrl` or `mqtt-url`.
 * The file comes from `--config FILE` or `VCAM_CONFIG`.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

export type OptionType = 'string' | 'int' | 'number' | 'boolean' | 'list' | 'duration' | 'bytes';

export interface OptionSpec {
  type: OptionType;
  description: string;
  default?: string | number | boolean | string[];
  required?: boolean;
  choices?: readonly string[];
  /** Environment variable name, when the derived VCAM_<NAME> would be ambiguous across commands. */
  env?: string;
  /** Shown as <hidden> in --help defaults and never echoed in errors. */
  secret?: boolean;
}

export type Spec = Record<string, OptionSpec>;

type ValueOf<O extends OptionSpec> = O extends { choices: readonly (infer C)[] } ? C : O['type'] extends 'string' ? string : O['type'] extends 'boolean' ? boolean : O['type'] extends 'list' ? string[] : number;

export type Config<S extends Spec> = {
  [K in keyof S]: S[K] extends { required: true } | { default: unknown } ? ValueOf<S[K]> : ValueOf<S[K]> | undefined;
};

export interface Command<S extends Spec> {
  name: string;
  summary: string;
  usage?: string;
  options: S;
}

/** Declares a command so that its config is typed from the option literals. */
export function defineCommand<const S extends Spec>(cmd: Command<S>): Command<S> {
  return cmd;
}

export type Loaded<S extends Spec> = { help: true; text: string } | { help: false; config: Config<S>; positionals: string[] };

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (s: string, spec?: OptionSpec) => spec?.env ?? `VCAM_${kebab(s).replace(/-/g, '_').toUpperCase()}`;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** A value as an error message shows it: a config file may hold a megabyte or a thousand levels of nesting. */
function shortly(raw: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(raw);
  } catch {
    return 'a value nested too deeply to print';
  }
  return text.length > 80 ? `${text.slice(0, 60)}… (${text.length} characters)` : text;
}

function parseValue(name: string, spec: OptionSpec, raw: unknown, source: string): unknown {
  const shown = spec.secret ? '<hidden>' : shortly(raw);
  const fail = (what: string): never => {
    throw new ConfigError(`${source} ${name}: ${shown} is not ${what}`);
  };
  switch (spec.type) {
    case 'string': {
      if (typeof raw !== 'string') fail('a string');
      const s = raw as string;
      if (spec.choices && !spec.choices.includes(s)) fail(`one of ${spec.choices.join(', ')}`);
      return s;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      return fail('a boolean (true/false)');
    case 'int':
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) fail(spec.type === 'int' ? 'an integer' : 'a number');
      return n;
    }
    case 'list':
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw;
      if (typeof raw === 'string')
        return raw
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
      return fail('a comma-separated list');
    case 'duration': {
      // A bare number read as milliseconds made `--duration 30` a 30 ms run that reported
      // success; seconds would surprise the next reader the other way. A unit is required
      // (0 is 0 in every unit).
      const bare = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(raw) ? Number(raw) : undefined;
      if (bare !== undefined && bare !== 0) fail(`a duration without a unit: write ${bare}s (or ${bare}ms, ${bare}m)`);
      return parseUnit(raw, DURATION_UNITS, 'ms') ?? fail('a duration such as 500ms, 30s, 5m, 2h, 7d');
    }
    case 'bytes':
      return parseUnit(raw, BYTE_UNITS, '') ?? fail('a size such as 1048576, 512KiB, 64MiB, 1GiB');
  }
}

function parseUnit(raw: unknown, units: Record<string, number>, bare: string): number | undefined {
  if (typeof raw === 'number' && Number.isFinite(raw) && raw >= 0) return raw * units[bare]!;
  if (typeof raw !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m && units[(m[2] || bare).toLowerCase()];
  return m && unit != null ? Math.round(Number(m[1]) * unit) : undefined;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    const data: unknown = JSON.parse(text);
    if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Error('the top level must be an object');
    return data as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

export function loadConfig<S extends Spec>(cmd: Command<S>, argv: string[], env: NodeJS.ProcessEnv = process.env): Loaded<S> {
  const byFlag = new Map(Object.keys(cmd.options).map((k) => [kebab(k), k]));
  const flags: Record<string, unknown> = {};
  const positionals: string[] = [];
  let configPath = env.VCAM_CONFIG;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true, text: helpText(cmd) };
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let flag = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | boolean | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (flag === 'config') {
      configPath = value ?? argv[++i];
      if (!configPath) throw new ConfigError('--config needs a file path');
      continue;
    }
    let key = byFlag.get(flag);
    if (!key && flag.startsWith('no-') && cmd.options[byFlag.get(flag.slice(3)) ?? '']?.type === 'boolean') {
      key = byFlag.get(flag.slice(3));
      flag = flag.slice(3);
      value = false;
    }
    if (!key) throw new ConfigError(`unknown flag --${flag}; run \`${cmd.name} --help\` for the options`);
    const spec = cmd.options[key]!;
    if (value === undefined) {
      const next = argv[i + 1];
      if (spec.type === 'boolean' && (next === undefined || !/^(true|false|1|0|yes|no)$/.test(next))) value = true;
      else if (next === undefined) throw new ConfigError(`--${flag} needs a value`);
      else value = argv[++i];
    }
    flags[key] = parseValue(`--${flag}`, spec, value, 'flag');
  }

  const file = configPath ? readConfigFile(configPath) : {};
  const fileValues: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(file)) {
    // Own keys only: "__proto__" or "constructor" in a file is an unknown key, not Object.prototype's.
    const key = Object.hasOwn(cmd.options, k) ? k : byFlag.get(k);
    if (!key) throw new ConfigError(`config file ${configPath}: unknown key "${k}"; run \`${cmd.name} --help\` for the options`);
    fileValues[key] = parseValue(`"${k}"`, cmd.options[key]!, v, `config file ${configPath}:`);
  }

  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(cmd.options)) {
    const fromEnv = env[envName(key, spec)];
    if (key in flags) config[key] = flags[key];
    else if (fromEnv !== undefined && fromEnv !== '') config[key] = parseValue(envName(key, spec), spec, fromEnv, 'environment variable');
    else if (key in fileValues) config[key] = fileValues[key];
    else if (spec.default !== undefined) config[key] = parseValue(`--${kebab(key)}`, spec, spec.default, 'default');
    else if (spec.required) throw new ConfigError(`--${kebab(key)} is required (or set ${envName(key, spec)}); run \`${cmd.name} --help\``);
  }
  return { help: false, config: config as Config<S>, positionals };
}

export function helpText<S extends Spec>(cmd: Command<S>): string {
  const rows = Object.entries(cmd.options).map(([key, spec]) => {
    const placeholder = spec.type === 'boolean' ? '' : ` <${spec.choices ? spec.choices.join('|') : spec.type}>`;
    const def = spec.default === undefined ? (spec.required ? ' (required)' : '') : ` (default: ${spec.secret ? '<hidden>' : Array.isArray(spec.default) ? spec.default.join(',') : spec.default})`;
    return [`  --${kebab(key)}${placeholder}`, `${spec.description}${def}  [${envName(key, spec)}]`];
  });
  rows.push(['  --config <file>', 'JSON file with any of these options (flags > environment > file)  [VCAM_CONFIG]']);
  rows.push(['  -h, --help', 'show this help']);
  const width = Math.min(36, Math.max(...rows.map((r) => r[0]!.length)) + 2);
  const lines = rows.map(([a, b]) => (a!.length >= width ? `${a}\n${' '.repeat(width)}${b}` : `${a!.padEnd(width)}${b}`));
  return `Usage: ${cmd.usage ?? `${cmd.name} [options]`}\n\n${cmd.summary}\n\nOptions:\n${lines.join('\n')}\n`;
}

/** The entries of `o` that are set, so that `{ ...defaults, ...definedOnly(o) }` keeps defaults for the rest. */
export function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
