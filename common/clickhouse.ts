/** How every command that connects to ClickHouse is given its credentials. */
import type { Spec } from './config.js';
import { readSecretFile } from './secrets.js';

export const CLICKHOUSE_AUTH_OPTIONS = {
  clickhouseUser: { type: 'string', description: 'ClickHouse user (default: default)' },
  clickhousePassword: { type: 'string', secret: true, description: 'ClickHouse password; a flag shows in `ps`: prefer VCAM_CLICKHOUSE_PASSWORD or --clickhouse-password-file' },
  clickhousePasswordFile: { type: 'string', description: 'file holding the ClickHouse password (the embedded ClickHouse keeps its own in <its data dir>/clickhouse.secret)' },
} as const satisfies Spec;

export interface ClickHouseAuthConfig {
  clickhouseUser?: string;
  clickhousePassword?: string;
  clickhousePasswordFile?: string;
}

/** For @clickhouse/client's createClient. */
export function clientAuth(c: ClickHouseAuthConfig): { username?: string; password?: string } {
  const { clickhouseUser, clickhousePassword } = clickhouseCredentials(c);
  return { username: clickhouseUser, password: clickhousePassword };
}

/** The user and password to connect with: the password given, else the file's. */
export function clickhouseCredentials(c: ClickHouseAuthConfig): { clickhouseUser?: string; clickhousePassword?: string } {
  const password = c.clickhousePassword ?? (c.clickhousePasswordFile ? readSecretFile(c.clickhousePasswordFile, '--clickhouse-password-file') : undefined);
  return { clickhouseUser: c.clickhouseUser, clickhousePassword: password };
}
