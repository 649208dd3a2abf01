/**
 * Memory:
 *  - resident size of each component at 10,000 events/s in both modes (an e2e probe, shared with
 *    the e2e suite when both run), beside the same process's RSS when up and idle, and an empty Node;
 *  - the processor's dedup state (HotSet) per million eventIds held / a plain Set<string> of the
 *    same ids, and the ids' own string bytes.
 */
import { spawn } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { stableEventId } from '../common/contract.js';
import { sleep } from '../common/retry.js';
import { HotSet } from '../processor/dedup.js';
import { ratio } from './measure.js';
import { benchConfig, componentCode, probe, SELF } from './e2e.js';
import { readProc } from './procstat.js';

const RSS_RATE = 10_000;
const HOT_HORIZON_MS = 10 * 60_000;

function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  // Without --expose-gc on the command line: the flag still works when set before a new context asks for gc.
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** The JavaScript heap and the memory of ArrayBuffers (the HotSet's tables), after a full collection. */
function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Module scope keeps a measured value reachable through the gc, whatever the optimiser sees. */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- written, never read, on purpose
let held: unknown;

/** Heap that `make`'s result holds on top of `before`. */
function heldBytes(gc: () => void, before: number, make: () => unknown): number {
  held = make();
  const after = heapAfterGc(gc);
  held = undefined;
  return after - before;
}

const perId = (bytes: number, n: number) => Math.round((bytes / n) * 10) / 10;

/**
 * In a function of its own: the interpreter keeps a frame's temporaries (here the array of
 * concatenated ids) alive until their registers are reused, which would skew the heap readings.
 */
function idsJson(n: number, tsOf: (i: number) => number): string {
  return JSON.stringify(Array.from({ length: n }, (_, i) => stableEventId({ deviceId: `cam-${String(i % 1000).padStart(5, '0')}`, geoId: 100 + (i % 50), ts: tsOf(i), type: 'person' })));
}

/**
 * The ids as the agent derives them (device-namespaced 128-bit digests, the longer of the two
 * forms), over one hot horizon of event time, held as the processor holds them: flat strings
 * out of JSON.parse of the Kafka messages, not the concatenations that made them.
 */
export function dedupMemory(n = 1_000_000): Record<string, unknown> {
  const gc = collector();
  const t0 = Date.now() - HOT_HORIZON_MS;
  const tsOf = (i: number) => t0 + Math.floor((i * HOT_HORIZON_MS) / n);
  let text = idsJson(n, tsOf);
  const h0 = heapAfterGc(gc);
  const ids = JSON.parse(text) as string[];
  // The array of references costs what a copy of it costs; the rest of what parsing added is the strings.
  const stringBytes = heapAfterGc(gc) - h0 - heldBytes(gc, heapAfterGc(gc), () => ids.slice());
  text = '';
  const h1 = heapAfterGc(gc);
  const hotBytes = heldBytes(gc, h1, () => {
    const hot = new HotSet(HOT_HORIZON_MS);
    // Held as the horizon holds them: by fingerprint (the last seconds' ids are also kept as strings, a bounded few).
    for (let i = 0; i < n; i++) hot.load(ids[i]!, tsOf(i));
    for (let i = 0; i < n; i++) if (hot.answer(ids[i]!, tsOf(i)) === 'new') throw new Error(`HotSet misses id ${i}`);
    return hot;
  });
  const setBytes = heldBytes(gc, h1, () => new Set(ids));
  // The HotSet keeps fingerprints, not the strings: those are garbage once their chunk is written.
  const hotPerId = hotBytes / n;
  const setPerId = (stringBytes + setBytes) / n;
  return {
    ids: n,
    idFormat: 'cam-00042#<32 hex digits> (the agent-derived form; camera-given ids are shorter)',
    avgIdChars: Math.round((ids.reduce((a, s) => a + s.length, 0) / n) * 10) / 10,
    buckets: `${HOT_HORIZON_MS / 60_000} one-minute buckets (ids spread over one hot horizon)`,
    idStringBytesPerId: perId(stringBytes, n),
    hotSet: {
      what: 'processor/dedup.ts HotSet holding the ids: per-minute tables of 32-bit fingerprints, no strings (heapUsed + arrayBuffers after gc)',
      bytesPerId: perId(hotBytes, n),
      mbPerMillionIds: Math.round(hotPerId),
    },
    baseline: {
      name: 'a plain Set<string> of the same ids (strings + Set)',
      bytesPerId: perId(stringBytes + setBytes, n),
      structureBytesPerId: perId(setBytes, n),
      mbPerMillionIds: Math.round(setPerId),
    },
    vsPlainSet: ratio(hotPerId, setPerId),
  };
}

/** RSS of an empty Node process started as the components are (with the tsx loader when they run from sources). */
async function emptyNodeRssMb(): Promise<number> {
  const loader = process.env.VCAM_FROM_SOURCE === '1' ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...loader, '-e', 'setTimeout(() => {}, 10_000)'], { stdio: 'ignore' });
  try {
    await sleep(1_000);
    return Math.round((readProc(child.pid!)?.rssMb ?? NaN) * 10) / 10;
  } finally {
    child.kill('SIGKILL');
  }
}

export async function benchMemory(): Promise<Record<string, unknown>> {
  const cfg = benchConfig();
  const components = componentCode();
  const emptyNodeMb = await emptyNodeRssMb();
  const rss: Record<string, unknown> = {};
  for (const mode of cfg.modes) {
    const p = await probe(mode, RSS_RATE, cfg);
    rss[mode === 'kafka' ? 'kafka' : 'singleNode'] = {
      sustained: p.sustained,
      why: p.why,
      rateAchieved: p.rateAchieved,
      latencyMs: p.latencyMs,
      processes: Object.fromEntries(Object.entries(p.processes).map(([name, u]) => [name, { steadyMb: u.rssSteadyMb, peakMb: u.rssPeakMb, idleMb: u.rssStartMb, cores: u.cores }])),
    };
  }
  return {
    rssAt10k: {
      what: `resident size per process during a ${cfg.probeMs / 1000} s e2e probe at ${RSS_RATE}/s: steady = median of the second half, peak = highest 1 s sample`,
      baseline: { name: `each process up and ready before load (idleMb), and an empty Node process${process.env.VCAM_FROM_SOURCE === '1' ? ' with the tsx loader' : ''}`, emptyNodeMb },
      note: `${SELF} is the bench process (simulator, its 4 agents with SQLite outboxes, and the bench itself); when a probe was not sustained its RSS includes the backlog`,
      components,
      ...rss,
    },
    dedup: dedupMemory(),
  };
}
