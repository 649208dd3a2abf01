/**
 * The alert book: which alerts are open, reconciled with what the rules find on each
 * evaluation, persisted to `vcam.alerts` (ReplacingMergeTree: the latest row of an alert_id
 * wins). An alert opens when its rule first fires for a subject and resolves when the rule no
 * longer fires for it. Rows that could not be written (ClickHouse down) are kept and written
 * on the next evaluation, so an outage is itself recorded once ClickHouse is back.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { dt64 } from '../../clickhouse/schema.js';

export type Severity = 'info' | 'warning' | 'critical';

export interface Finding {
  kind: string;
  subject: string;
  severity: Severity;
  message: string;
  /**
   * When the condition began, if the data says so (a geo's minute). Processors that evaluate
   * the same data then write the same alert_id, and ClickHouse keeps one row.
   */
  since?: number;
}

export interface Rule {
  /** The kinds this rule decides; an open alert of these kinds that it no longer finds resolves. */
  kinds: string[];
  evaluate(now: number): Promise<Finding[]>;
  /** Kinds that never resolve by themselves (data loss): a person resolves them. */
  sticky?: string[];
  /** Which subjects this rule speaks for (default: all); others' alerts are left alone. */
  owns?: (subject: string) => boolean;
}

export interface AlertRow {
  alert_id: string;
  kind: string;
  subject: string;
  severity: Severity;
  state: 'open' | 'resolved';
  opened_at: number;
  resolved_at: number | null;
  message: string;
  updated_at: number;
}

export class AlertBook {
  private readonly open = new Map<string, AlertRow>();
  private unsaved: AlertRow[] = [];

  constructor(private readonly client: ClickHouseClient) {}

  /** Picks up alerts left open by an earlier run (or another instance). */
  async load(): Promise<void> {
    const rows = await (
      await this.client.query({
        query: "SELECT alert_id, kind, subject, severity, toUnixTimestamp64Milli(opened_at) AS opened_at, message FROM vcam.alerts FINAL WHERE state = 'open'",
        format: 'JSONEachRow',
      })
    ).json<{ alert_id: string; kind: string; subject: string; severity: Severity; opened_at: number; message: string }>();
    for (const r of rows) this.open.set(key(r.kind, r.subject), { ...r, opened_at: Number(r.opened_at), state: 'open', resolved_at: null, updated_at: Number(r.opened_at) });
  }

  openAlerts(): AlertRow[] {
    return [...this.open.values()];
  }

  /** Applies one rule's findings: opens what is new, resolves what stopped firing. */
  reconcile(kinds: string[], findings: Finding[], now: number, sticky: string[] = [], owns: (subject: string) => boolean = () => true): { opened: AlertRow[]; resolved: AlertRow[] } {
    const firing = new Set(findings.map((f) => key(f.kind, f.subject)));
    const opened: AlertRow[] = [];
    const resolved: AlertRow[] = [];
    for (const f of findings) {
      if (this.open.has(key(f.kind, f.subject))) continue;
      const since = f.since ?? now;
      const row: AlertRow = { alert_id: `${f.kind}:${f.subject}:${since}`, kind: f.kind, subject: f.subject, severity: f.severity, state: 'open', opened_at: since, resolved_at: null, message: f.message, updated_at: now };
      this.open.set(key(f.kind, f.subject), row);
      opened.push(row);
    }
    for (const [k, row] of this.open) {
      if (!kinds.includes(row.kind) || sticky.includes(row.kind) || !owns(row.subject) || firing.has(k)) continue;
      this.open.delete(k);
      resolved.push({ ...row, state: 'resolved', resolved_at: now, updated_at: now });
    }
    this.unsaved.push(...opened, ...resolved);
    return { opened, resolved };
  }

  async flush(): Promise<void> {
    if (this.unsaved.length === 0) return;
    const rows = this.unsaved;
    await this.client.insert({
      table: 'vcam.alerts',
      values: rows.map((r) => ({ ...r, opened_at: dt64(r.opened_at), resolved_at: r.resolved_at === null ? null : dt64(r.resolved_at), updated_at: dt64(r.updated_at) })),
      format: 'JSONEachRow',
    });
    this.unsaved = this.unsaved.slice(rows.length);
  }
}

const key = (kind: string, subject: string) => `${kind}\0${subject}`;
