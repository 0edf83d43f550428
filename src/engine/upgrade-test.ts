import { errorMessage, isHvError } from '../errors.js';
import type { TestResult } from './test-result.js';
import { activateAndCheck, markInProgress, recordBaseline } from './upgrade-test-activate.js';
import {
  addTestedRoot,
  buildSystem,
  guardBuildDowngrade,
  guardLockDowngrade,
  resolveHostConfiguration,
  updateInput,
} from './upgrade-test-build.js';
import { recordChanges } from './upgrade-test-changes.js';
import { planRelease, readStart, stage } from './upgrade-test-prepare.js';
import {
  isFailure,
  recordResult,
  type TestDeps,
  type TestOptions,
  type TestRun,
} from './upgrade-test-run.js';

export { TESTED_ROOT } from './upgrade-test-build.js';
export type { TestDeps, TestOptions } from './upgrade-test-run.js';

/**
 * Build the updated system from a staging copy, activate it with `switch-to-configuration test`,
 * health-check it and re-activate the previous system on any failure. Writes the result files and
 * returns the result; throws HvError('refused') for a downgrade (nothing activated). The live
 * flake dir is only read.
 */
export async function runUpgradeTest(deps: TestDeps, opts: TestOptions): Promise<TestResult> {
  const start = readStart(deps, opts);
  const plan = planRelease(deps, opts, start);
  const run = stage(deps, opts, start, plan);
  // Any unexpected error from here on is still a recorded FAILED test (a refusal is not).
  try {
    return await testSteps(run);
  } catch (e) {
    // A refusal or a configuration error is not a failed test: nothing is recorded or broadcast.
    if (isHvError(e) && (e.code === 'refused' || e.code === 'config-invalid')) throw e;
    deps.log.error('upgrade test failed', { step: run.step, error: errorMessage(e) });
    return recordResult(run, { failedStep: run.step, kind: 'internal', error: errorMessage(e) });
  }
}

/** The steps after staging, in order; a step's Failure is recorded and ends the test. */
async function testSteps(run: TestRun): Promise<TestResult> {
  const updated = await updateInput(run);
  if (isFailure(updated)) return recordResult(run, updated);
  guardLockDowngrade(run, updated.newNode);
  const configuration = await resolveHostConfiguration(run);
  const built = await buildSystem(run, configuration);
  if (isFailure(built)) return recordResult(run, built);
  guardBuildDowngrade(run);
  await addTestedRoot(run, built.toplevel);
  await recordChanges(run, built.toplevel);
  const baseline = await recordBaseline(run);
  if (isFailure(baseline)) return recordResult(run, baseline);
  markInProgress(run, built.toplevel);
  return activateAndCheck(run, built.toplevel, baseline);
}
