/**
 * What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it, in their
 * order: the plugin's `$__conditionalAll(cond, $var)` (1=1 when the variable is "All"), Grafana's
 * template variables (`$var`, `${var:csv}`, `${var:singlequote}`), then the plugin's macros as
 * its pkg/macros/macros.go defines them (`$__timeFilter`, `$__timeInterval`, `$__fromTime`,
 * `$__toTime`, `$__interval_s`, …). Tests run the result against ClickHouse.
 */
export interface GrafanaContext {
  fromMs: number;
  toMs: number;
  intervalS: number;
  /** Variable values; 'all' for the All option (every value in `options`). */
  vars: Record<string, { value: string[] | 'all'; options: string[] }>;
}

export function expandPanelSql(sql: string, c: GrafanaContext): string {
  let out = sql.replace(/\$__conditionalAll\(((?:[^()]|\([^()]*\))*?),\s*\$\{?(\w+)(?::\w+)?\}?\s*\)/g, (_m, cond: string, name: string) => {
    const v = c.vars[name];
    if (!v) throw new Error(`unknown variable $${name}`);
    return v.value === 'all' ? '1=1' : cond;
  });
  const values = (name: string) => {
    const v = c.vars[name];
    if (!v) throw new Error(`unknown variable $${name}`);
    return v.value === 'all' ? v.options : v.value;
  };
  out = out.replace(/\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)/g, (_m, braced: string | undefined, format: string | undefined, bare: string | undefined) => {
    const vs = values((braced ?? bare)!);
    if (format === 'singlequote') return vs.map((v) => `'${v.replace(/'/g, "\\'")}'`).join(',');
    return vs.join(',');
  });
  const s = (ms: number) => Math.floor(ms / 1000);
  out = out
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_m, col: string) => `${col} >= toDateTime(${s(c.fromMs)}) AND ${col} <= toDateTime(${s(c.toMs)})`)
    .replace(/\$__timeInterval\(([^)]+)\)/g, (_m, col: string) => `toStartOfInterval(toDateTime(${col}), INTERVAL ${Math.max(1, Math.floor(c.intervalS))} second)`)
    .replace(/\$__fromTime\b/g, `toDateTime(${s(c.fromMs)})`)
    .replace(/\$__toTime\b/g, `toDateTime(${s(c.toMs)})`)
    .replace(/\$__interval_s\b/g, String(Math.max(1, Math.floor(c.intervalS))));
  if (/\$/.test(out)) throw new Error(`unexpanded macro or variable left in:\n${out}`);
  return out;
}
