/**
 * One statement per request, as a ClickHouse server allows over HTTP. chDB runs every statement
 * of a multi-statement text, so `GET /?query=SELECT 1; DROP TABLE vcam.geo` would run the DROP;
 * the server refuses such a request before the engine sees it.
 *
 * The scan knows what a `;` can hide in: string literals ('…' with \ and '' escapes), quoted
 * identifiers ("…", `…`), and comments (-- and # to the end of the line, nested /* … *\/). An
 * INSERT's data after `FORMAT <name>` is not SQL and is not scanned: the engine reads all of it
 * as data. `VALUES` is scanned: chDB runs a statement after `INSERT … VALUES (…);`.
 */

/** Where the first statement ends, if another one follows it; undefined for a single statement. */
export function secondStatementAt(sql: string): number | undefined {
  const n = sql.length;
  let i = 0;
  const dataStart = insertDataStart(sql);
  while (i < n) {
    if (dataStart !== undefined && i >= dataStart) return undefined;
    const past = skipLiteralOrComment(sql, i);
    if (past > i) i = past;
    else if (sql[i] === ';') return restIsEmpty(sql, i + 1) ? undefined : i;
    else i++;
  }
  return undefined;
}

/** Past the string literal, quoted identifier or comment that starts at `i`; `i` itself when none does. */
function skipLiteralOrComment(sql: string, i: number): number {
  const c = sql[i];
  if (c === "'" || c === '"' || c === '`') return skipQuoted(sql, i, c);
  if ((c === '-' && sql[i + 1] === '-') || c === '#') return skipLine(sql, i);
  if (c === '/' && sql[i + 1] === '*') return skipBlock(sql, i);
  return i;
}

function skipQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\') i += 2;
    else if (c === quote && sql[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
  return i;
}

function skipLine(sql: string, start: number): number {
  const end = sql.indexOf('\n', start);
  return end < 0 ? sql.length : end + 1;
}

function skipBlock(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return i;
}

/** Only whitespace, comments and further `;` after a statement: still one statement. */
function restIsEmpty(sql: string, from: number): boolean {
  let i = skipSpace(sql, from);
  while (sql[i] === ';') i = skipSpace(sql, i + 1);
  return i >= sql.length;
}

/**
 * Where an INSERT's inline data begins (just after its first `FORMAT <name>` outside literals and
 * comments). The scan stops there: the data may be megabytes of rows, and reading them here cost
 * the embedded server about 9 µs per events row (2026-12-04), more than the engine's own insert.
 */
export function insertDataStart(sql: string): number | undefined {
  let i = skipSpace(sql, 0);
  const first = wordEnd(sql, i);
  if (sql.slice(i, first).toUpperCase() !== 'INSERT') return undefined;
  i = first;
  while (i < sql.length) {
    const past = skipLiteralOrComment(sql, i);
    if (past > i) i = past;
    else if (isWordChar(sql[i]!)) {
      const end = wordEnd(sql, i);
      if (end - i === 6 && sql.slice(i, end).toUpperCase() === 'FORMAT') {
        const name = skipSpace(sql, end);
        const nameEnd = wordEnd(sql, name);
        if (name > end && nameEnd > name) return nameEnd;
      }
      i = end;
    } else i++;
  }
  return undefined;
}

const isWordChar = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_';

function wordEnd(sql: string, start: number): number {
  let i = start;
  while (i < sql.length && isWordChar(sql[i]!)) i++;
  return i;
}

/** Past whitespace and comments. */
function skipSpace(sql: string, start: number): number {
  let i = start;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) i++;
    else if ((c === '-' && sql[i + 1] === '-') || c === '#') i = skipLine(sql, i);
    else if (c === '/' && sql[i + 1] === '*') i = skipBlock(sql, i);
    else break;
  }
  return i;
}
