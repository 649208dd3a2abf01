/**
 * `npm run bench [-- <suite> ...]`: runs benchmark suites and prints one JSON document. Each
 * figure stands beside a baseline measured in the same run, because these machines are shared.
 */
import os from 'node:os';

const SUITES: Record<string, () => Promise<unknown>> = {
  contract: async () => (await import('./validators.js')).benchValidators(),
  agent: async () => (await import('./agent.js')).benchAgent(),
  bridge: async () => (await import('./bridge.js')).benchBridge(),
  processor: async () => (await import('./processor.js')).benchProcessor(),
  archive: async () => (await import('./archive.js')).benchArchive(),
  e2e: async () => (await import('./e2e.js')).benchE2e(),
  // After e2e: it reuses e2e's 10,000/s probes when both run.
  memory: async () => (await import('./memory.js')).benchMemory(),
  // Opt-in: it needs a Kafka client that is not a dependency (see bench/kafka-clients.ts).
  'kafka-clients': async () => (await import('./kafka-clients.js')).benchKafkaClients(),
  // Opt-in: 15 minutes of one Kafka-mode run, sampled (see bench/long.ts).
  long: async () => (await import('./long.js')).benchLong(),
};
const OPT_IN = new Set(['kafka-clients', 'long']);

if (process.argv.includes('--quick')) process.env.VCAM_BENCH_QUICK = '1';
const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((s) => !SUITES[s]);
if (process.argv.includes('--help') || unknown.length) {
  process.stderr.write(
    `${unknown.length ? `unknown suite: ${unknown.join(', ')}\n` : ''}Usage: npm run bench [-- [--quick] <suite> ...]\nSuites: ${Object.keys(SUITES).join(', ')} (default: all but ${[...OPT_IN].join(', ')})\n--quick (or VCAM_BENCH_QUICK=1): short e2e probes and few steps, for a smoke run\n`,
  );
  process.exit(unknown.length ? 2 : 0);
}
const suites = asked.length ? asked : Object.keys(SUITES).filter((s) => !OPT_IN.has(s));
const report: Record<string, unknown> = { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version }, startedAt: new Date().toISOString() };
for (const name of suites) {
  process.stderr.write(`bench: ${name}…\n`);
  report[name] = await SUITES[name]!();
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
process.exit(0);
