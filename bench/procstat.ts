/**
 * CPU and resident memory of processes, read from /proc while a benchmark runs. The stack's
 * children are separate processes, so process.cpuUsage() and memoryUsage() cannot see them.
 */
import { readFileSync } from 'node:fs';

// Linux reports utime and stime in clock ticks; 100 per second on every architecture Node runs on.
const TICKS_PER_S = 100;

export interface ProcSample {
  cpuS: number;
  rssMb: number;
}

export function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
    const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
    return { cpuS, rssMb: rssKb / 1024 };
  } catch {
    return undefined;
  }
}

export interface ProcUsage {
  /** CPU seconds per wall second over the window (1 = one core busy). */
  cores: number;
  cpuS: number;
  rssPeakMb: number;
  /** Median RSS over the window's second half, once start-up growth is over. */
  rssSteadyMb: number;
  /** RSS when the window opened (for a stack child: up and ready, no load yet). */
  rssStartMb: number;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Samples named processes every `everyMs` between start() and stop(). */
export class Sampler {
  private readonly series = new Map<string, { t: number; s: ProcSample }[]>();
  private timer?: NodeJS.Timeout;

  constructor(
    /** Re-read at every sample: a restarted child has a new pid. */
    private readonly pids: () => Map<string, number | undefined>,
    private readonly everyMs = 1_000,
  ) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  private sample(): void {
    const t = Date.now();
    for (const [name, pid] of this.pids()) {
      const s = pid === undefined ? undefined : readProc(pid);
      if (!s) continue;
      const list = this.series.get(name) ?? [];
      list.push({ t, s });
      this.series.set(name, list);
    }
  }

  usage(): Record<string, ProcUsage> {
    const out: Record<string, ProcUsage> = {};
    for (const [name, list] of this.series) {
      const first = list[0]!;
      const last = list.at(-1)!;
      const wallS = (last.t - first.t) / 1000;
      const cpuS = last.s.cpuS - first.s.cpuS;
      const tail = list
        .filter((x) => x.t >= first.t + (last.t - first.t) / 2)
        .map((x) => x.s.rssMb)
        .sort((a, b) => a - b);
      out[name] = {
        cores: wallS > 0 ? round(cpuS / wallS, 2) : 0,
        cpuS: round(cpuS),
        rssPeakMb: round(Math.max(...list.map((x) => x.s.rssMb))),
        rssSteadyMb: round(tail[Math.floor(tail.length / 2)] ?? last.s.rssMb),
        rssStartMb: round(first.s.rssMb),
      };
    }
    return out;
  }
}
