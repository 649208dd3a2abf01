// Prints vitest's JSON report as the closing line CI reads: "N passed, N failed[, N skipped]".
import { readFileSync } from 'node:fs';

let r;
try {
  r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  console.log(`0 passed, 1 failed`);
  console.error(`ci: no test report (${err.message}): the test run did not finish`);
  process.exit(0);
}
// A test file that fails to load counts as a failure even though it has no test results.
const brokenFiles = r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed${skipped ? `, ${skipped} skipped` : ''}`);
