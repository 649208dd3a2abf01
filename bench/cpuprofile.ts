/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. `VCAM_BENCH_PROF=<dir> npm run
 * bench -- bridge`): self time per function, as a share of the process's non-idle time, and
 * optionally the inclusive share of frames matching regexes (a frame counts once per sample).
 *
 *   node --import tsx bench/cpuprofile.ts <file-or-dir>... [--top 15] [--incl 'decodePayload' --incl 'kafkajs/src/producer']
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const top = Number(args[args.indexOf('--top') + 1] || 15);
const incl = args.flatMap((a, i) => (args[i - 1] === '--incl' ? [new RegExp(a)] : []));
const paths = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--top' && args[i - 1] !== '--incl');
const files = paths.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(p, f))
    : [p],
);

const where = (n: Node) => {
  const url = n.callFrame.url.replace(/^file:\/\/\/.*?\/(?=(node_modules|bridge|processor|common|agent|bench)\/)/, '').replace(/^node_modules\//, '');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}${url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
};

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = incl.map(() => 0);
  let busy = 0;
  let idle = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') return void (idle += dt);
    busy += dt;
    const label = where(node);
    self.set(label, (self.get(label) ?? 0) + dt);
    if (!incl.length) return;
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(where(byId.get(at)!));
    incl.forEach((re, j) => {
      if (stack.some((s) => re.test(s))) inclusive[j]! += dt;
    });
  });
  const pct = (t: number) => `${((100 * t) / busy).toFixed(1).padStart(5)} %`;
  console.log(`\n${basename(file)}: ${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle; shares of busy time`);
  console.log('self time:');
  for (const [label, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${label}`);
  if (incl.length) console.log('inclusive:');
  incl.forEach((re, j) => console.log(`${pct(inclusive[j]!)}  ${re.source}`));
}
