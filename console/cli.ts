/** `vconsole`: the operators' terminal console (Ink), or one JSON snapshot for scripts. */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { createElement } from 'react';
import { EXIT, exitWith, parseOrHelp } from '../common/cli.js';
import { CLICKHOUSE_AUTH_OPTIONS, clientAuth } from '../common/clickhouse.js';
import { defineCommand } from '../common/config.js';
import { VcamError } from '../common/errors.js';
import { App } from './app.js';
import { acknowledge, geoDetail, takeSnapshot } from './snapshot.js';

export const consoleCommand = defineCommand({
  name: 'vconsole',
  summary:
    "The operators' console: live per-geo counts, lag, agents' backlog, alerts. Keys: 1-5/tab views, ? help, q quit.\n" + 'With --once or --json, or when stdout is not a terminal, prints one JSON snapshot of what the views show and exits.',
  options: {
    clickhouseUrl: { type: 'string', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP URL' },
    ...CLICKHOUSE_AUTH_OPTIONS,
    metrics: { type: 'list', description: "components' /metrics URLs (agents' backlog, bridges' connections), comma-separated" },
    refresh: { type: 'duration', default: '1s', description: 'how often to refresh' },
    once: { type: 'boolean', default: false, description: 'one snapshot as JSON, then exit' },
    json: { type: 'boolean', default: false, description: 'JSON output (implies --once)' },
    topWindow: { type: 'duration', default: '5m', description: 'the window of the top-X lists in the JSON snapshot' },
    ackAs: { type: 'string', default: process.env.USER ?? 'operator', description: 'name recorded with an acknowledgement' },
  },
});

export async function main(argv: string[]): Promise<number> {
  const parsed = parseOrHelp(consoleCommand, argv);
  if (typeof parsed === 'number') return parsed;
  const c = parsed.config;
  if (c.refresh < 100) throw new VcamError('USAGE', '--refresh must be at least 100ms');
  const client = createClient({ url: c.clickhouseUrl, ...clientAuth(c), request_timeout: 10_000, log: { level: ClickHouseLogLevel.OFF } });
  const interactive = !c.once && !c.json && hasTerminal();
  try {
    if (!interactive) {
      let snapshot;
      try {
        snapshot = await takeSnapshot(client, c.clickhouseUrl, { topWindowS: Math.round(c.topWindow / 1000), metricsUrls: c.metrics });
      } catch (err) {
        process.stderr.write(`vconsole: cannot read ClickHouse at ${c.clickhouseUrl}: ${(err as Error).message || String(err)}\n`);
        return EXIT.FAILURE;
      }
      process.stdout.write(`${JSON.stringify(snapshot)}\n`);
      return EXIT.OK;
    }
    const ui = await startConsole(client, { clickhouseUrl: c.clickhouseUrl, metricsUrls: c.metrics, refreshMs: c.refresh, ackAs: c.ackAs });
    process.once('SIGTERM', () => ui.unmount());
    await ui.done;
    return EXIT.OK;
  } finally {
    await client.close();
  }
}

/**
 * The interactive console on this terminal (also what `vcam up` shows in the foreground):
 * `done` settles when the user quits, `unmount()` ends it from outside and restores the terminal.
 */
export async function startConsole(client: ClickHouseClient, o: { clickhouseUrl: string; metricsUrls?: string[]; refreshMs: number; ackAs: string }): Promise<{ done: Promise<void>; unmount(): void }> {
  const { render } = await import('ink');
  const app = render(
    createElement(App, {
      load: ({ topWindowS }) => takeSnapshot(client, o.clickhouseUrl, { topWindowS, metricsUrls: o.metricsUrls }),
      detail: (geoId) => geoDetail(client, geoId),
      acknowledge: (id) => acknowledge(client, id, o.ackAs),
      refreshMs: o.refreshMs,
      color: !('NO_COLOR' in process.env),
    }),
    { exitOnCtrlC: true },
  );
  return { done: app.waitUntilExit().then(() => undefined), unmount: () => app.unmount() };
}

/** Whether this process can run the interactive console. */
export function hasTerminal(): boolean {
  return Boolean(process.stdout.isTTY && process.stdin.isTTY && typeof process.stdin.setRawMode === 'function');
}

export function run(): Promise<never> {
  return exitWith(() => main(process.argv.slice(2)));
}
