/**
 * Java servers vcam starts on this machine (the local Kafka broker, the local S3 server): one JVM
 * child each, sized for two-core machines, whose output goes to a log file and a short tail for
 * error messages, and which dies with the process that started it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';

/** The serial collector and two JIT threads: a parallel GC or a full JIT pool would take both cores from the tests. */
export function smallJvm(heapMb: number): string[] {
  return [`-Xmx${heapMb}m`, `-Xms${Math.min(heapMb, 128)}m`, '-XX:+UseSerialGC', '-XX:CICompilerCount=2', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true'];
}

/**
 * The command line that runs `java args` and takes it down with this process (setpriv --pdeathsig,
 * where util-linux has it): a test worker killed by a timeout leaves no JVM behind.
 */
export function javaCommand(args: string[]): [string, string[]] {
  return existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', ['--pdeathsig', 'TERM', 'java', ...args]] : ['java', args];
}

export class JavaChild {
  private child: ChildProcess | undefined;
  private tail: string[] = [];
  private out: WriteStream | undefined;
  /** Resolves when the current JVM (if any) has exited. */
  exited: Promise<void> = Promise.resolve();

  constructor(private readonly o: { logFile: string; onOutput?: (line: string) => void }) {}

  get pid(): number | undefined {
    const c = this.child;
    return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Its last output lines, for error messages. */
  lastOutput(): string {
    return this.tail.join('\n');
  }

  start(args: string[]): void {
    this.out ??= createWriteStream(this.o.logFile, { flags: 'a' });
    const [cmd, argv] = javaCommand(args);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const onData = (d: Buffer) => {
      this.out?.write(d);
      for (const line of d.toString('utf8').split('\n')) {
        if (!line) continue;
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
        this.o.onOutput?.(line);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  }

  /** kill -9: no shutdown hooks run. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and the JVM's shutdown hooks; SIGKILL after `graceMs`. Closes the log file. */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.running) {
      this.child!.kill('SIGTERM');
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => (this.out ? this.out.end(resolve) : resolve()));
    this.out = undefined;
  }
}
