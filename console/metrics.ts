/** The components' own /metrics, for what only they know: an agent's backlog, a bridge's connections. */
import { parseMetrics } from '../common/metrics.js';

export interface ComponentMetrics {
  url: string;
  kind: 'agent' | 'bridge' | 'processor' | 'archive' | 'unknown';
  up: boolean;
  error?: string;
  /**
   * agent: backlog events, oldest unsent age (s), connected (0/1); bridge: connected agents, in-flight events; processor: lag events;
   * archive: its own lag (s), the authority on it, and its failed runs.
   */
  values: Record<string, number>;
  /** The component's name as its metrics label it (agent id), when they do. */
  name?: string;
}

export async function scrape(url: string, timeoutMs = 2_000): Promise<ComponentMetrics> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { url, kind: 'unknown', up: false, error: `HTTP ${res.status}`, values: {} };
    const { sums, labels } = parseMetrics(await res.text());
    const get = (name: string) => sums.get(name) ?? 0;
    if (sums.has('vcam_agent_backlog_events')) {
      return { url, kind: 'agent', up: true, name: labels.get('agent'), values: { backlogEvents: get('vcam_agent_backlog_events'), oldestUnsentAgeS: get('vcam_agent_oldest_unsent_age_seconds'), connected: get('vcam_agent_connected') } };
    }
    if (sums.has('vcam_bridge_connected_agents')) return { url, kind: 'bridge', up: true, values: { connectedAgents: get('vcam_bridge_connected_agents'), inflightEvents: get('vcam_bridge_inflight_events') } };
    if (sums.has('vcam_processor_consumer_lag_events')) return { url, kind: 'processor', up: true, values: { lagEvents: get('vcam_processor_consumer_lag_events') } };
    if (sums.has('vcam_archive_lag_seconds')) return { url, kind: 'archive', up: true, values: { lagSeconds: get('vcam_archive_lag_seconds'), failures: get('vcam_archive_failures_total') } };
    return { url, kind: 'unknown', up: true, values: {} };
  } catch (err) {
    return { url, kind: 'unknown', up: false, error: (err as Error).message, values: {} };
  }
}
