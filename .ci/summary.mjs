// Prints the one closing line CI reads: "N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

const [file, rc] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  skipped = r.numPendingTests + r.numTodoTests;
  // A suite that failed to load counts as a failure even though none of its tests ran.
  failed += r.testResults.filter((s) => s.status === 'failed' && s.assertionResults.length === 0).length;
} catch {
  // Type-check or lint failed before any test ran.
  failed = Number(rc) === 0 ? 0 : 1;
}
if (Number(rc) !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
