/** `vconsole`: the operators' terminal console. Arrives with issue 7; until then it says so. */
import { exitWith } from '../common/cli.js';
import { VcamError } from '../common/errors.js';

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('Usage: vconsole [--clickhouse-url URL] [--refresh 1s] [--once] [--json]\n\nThe operators\' terminal console. Not available yet: it arrives with issue 7.\n');
    return 0;
  }
  throw new VcamError('NOT_IMPLEMENTED', 'vconsole: not available yet; it arrives with the console (issue 7), after the processor writes to ClickHouse.');
}

export function run(): Promise<never> {
  return exitWith(() => main(process.argv.slice(2)));
}
