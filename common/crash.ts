/**
 * A test hook for crash tests that must land where they claim: with `VCAM_CRASH_AT=<point>:<n>`
 * in its environment, a process kills itself (SIGKILL, as kill -9 from outside) the n-th time
 * it reaches `<point>`. Unset (always, outside tests) it costs one comparison.
 */
const [point, nth] = (process.env.VCAM_CRASH_AT ?? '').split(':');
let passes = 0;

export function crashPoint(here: string): void {
  if (here !== point) return;
  if (++passes === Number(nth ?? 1)) process.kill(process.pid, 'SIGKILL');
}
