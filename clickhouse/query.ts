/** One parameterised SELECT, its rows as objects: the shape every reader of the vcam tables wants. */
import type { ClickHouseClient } from '@clickhouse/client';

export async function queryRows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  return (await client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>();
}
