import { errorMessage } from '../errors.js';
import { systemDiff } from './closure.js';
import { diffSummary } from './closure-diff-text.js';
import type { TestRun } from './upgrade-test-run.js';

/**
 * Step "changes" (after the build): what the built system changes against the running one
 * (packages, kernel, closure size), kept in the result for every message an admin decides from.
 * Best effort: the test is about whether the system works, so a diff that cannot be computed is
 * recorded as `changesError` and the test goes on.
 */
export async function recordChanges(run: TestRun, toplevel: string): Promise<void> {
  const { config, runner, log, progress } = run.deps;
  const { r } = run;
  progress.step('comparing with the running system');
  try {
    r.changes = await systemDiff(runner, config, run.previousSystem, toplevel);
    const summary = diffSummary(r.changes, config.test.watch);
    progress.step('changes', summary);
    log.info('closure diff', { summary });
  } catch (e) {
    r.changesError = errorMessage(e);
    progress.step('changes', `unknown: ${r.changesError}`);
    log.warn('closure diff failed', { error: r.changesError });
  }
}
