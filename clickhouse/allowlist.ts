/**
 * What SQL the embedded ClickHouse runs. chDB is clickhouse-local in a library: no users, no
 * grants, no `user_files_path`; `file()`, `url()`, `INTO OUTFILE` and the rest reach the host as
 * the user running vcam. A real server would refuse them through its access control, so this
 * server decides on the engine's own parse of the statement (`EXPLAIN AST`), by allow-lists:
 * a statement kind, table function or engine that is not listed is refused, whatever its name.
 *
 * Listed: what vcam, its console, Grafana's panels and an operator exploring the data use.
 */

/** Statement kinds (the AST's root node) that only read: what a GET may run (ClickHouse's readonly). */
const READ_KINDS = new Set(['SelectWithUnionQuery', 'SelectIntersectExceptQuery', 'Explain', 'DescribeQuery', 'CheckQuery']);
const READ_PREFIXES = ['Show', 'Exists'];
/** And what a POST may run besides. Not: SYSTEM, SET and USE (they would outlive the request on the shared session), ATTACH/DETACH, BACKUP/RESTORE, KILL, users and grants, functions. */
const WRITE_KINDS = new Set(['InsertQuery', 'CreateQuery', 'AlterQuery', 'DropQuery', 'TruncateQuery', 'Rename', 'OptimizeQuery']);

/** Table functions that make rows out of nothing but their arguments. */
const TABLE_FUNCTIONS = new Set(['numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'generate_series', 'generateSeries', 'generateRandom', 'values', 'null', 'view']);
/** Engines that keep data inside the data directory. */
const ENGINES = new Set([
  'MergeTree',
  'ReplacingMergeTree',
  'SummingMergeTree',
  'AggregatingMergeTree',
  'CollapsingMergeTree',
  'VersionedCollapsingMergeTree',
  'Memory',
  'Null',
  'Log',
  'TinyLog',
  'StripeLog',
  'Set',
  'Join',
  // Database engines.
  'Atomic',
  'Ordinary',
]);
/** Ordinary functions that read the host: `file(path)` returns a file's contents. */
const HOST_FUNCTIONS = new Set(['file']);

export interface Refusal {
  status: number;
  code: number;
  type: string;
  message: string;
}

const denied = (message: string): Refusal => ({ status: 403, code: 497, type: 'ACCESS_DENIED', message: `${message} (the embedded ClickHouse runs only what stays inside its data directory; docs/security.md)` });

interface Node {
  label: string;
  parent?: Node;
  /** Its parent's first child: a table's engine comes before its PARTITION BY, ORDER BY, TTL. */
  first: boolean;
  children: number;
}

/** The tree of `EXPLAIN AST` output: one node a line, depth by leading spaces. */
function nodes(ast: string): Node[] {
  const out: Node[] = [];
  const stack: Node[] = [];
  for (const line of ast.split('\n')) {
    if (!line.trim()) continue;
    const depth = line.length - line.trimStart().length;
    stack.length = depth;
    const parent = stack[depth - 1];
    const node: Node = { label: line.trim().replace(/\s*\(children \d+\)$/, ''), parent, first: parent ? parent.children++ === 0 : true, children: 0 };
    stack[depth] = node;
    out.push(node);
  }
  return out;
}

const kindOf = (n: Node) => n.label.split(' ')[0]!;

/** Undefined when the statement may run; otherwise why not, as ClickHouse would say it. */
export function judge(ast: string, readOnly: boolean): Refusal | undefined {
  const all = nodes(ast);
  const root = all[0];
  if (!root) return denied('Not a statement');
  const kind = kindOf(root);
  const reads = READ_KINDS.has(kind) || READ_PREFIXES.some((p) => kind.startsWith(p));
  if (readOnly && !reads) return { status: 400, code: 164, type: 'READONLY', message: `Cannot execute query in readonly mode: ${kind} changes data; use POST` };
  if (!reads && !WRITE_KINDS.has(kind)) return denied(`${kind} statements are not allowed`);
  for (const n of all) {
    const parent = n.parent ? n.parent.label : '';
    const fn = /^Function (\S+)/.exec(n.label)?.[1];
    if (n.label === 'Dictionary definition') return denied('Dictionaries are not allowed (their sources read files, URLs and other servers)');
    // A path straight under a SELECT or an INSERT is INTO OUTFILE or FROM INFILE.
    if (n.label.startsWith('Literal') && /^(SelectWithUnionQuery|InsertQuery)\b/.test(parent)) return denied('INTO OUTFILE and FROM INFILE are not allowed');
    if (fn === undefined) continue;
    if (parent.startsWith('InsertQuery')) return denied(`INSERT INTO FUNCTION ${fn} is not allowed`);
    if (parent === 'TableExpression' || parent.startsWith('CreateQuery')) {
      if (!TABLE_FUNCTIONS.has(fn)) return denied(`Table function ${fn} is not allowed; allowed: ${[...TABLE_FUNCTIONS].join(', ')}`);
    } else if (parent === 'Storage definition' && n.first) {
      if (!ENGINES.has(fn)) return denied(`Engine ${fn} is not allowed (name one: ENGINE = …); allowed: ${[...ENGINES].join(', ')}`);
    } else if (HOST_FUNCTIONS.has(fn.toLowerCase())) return denied(`Function ${fn} reads host files and is not allowed`);
  }
  return undefined;
}
