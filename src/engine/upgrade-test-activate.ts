import { errorMessage } from '../errors.js';
import { writeJsonAtomic } from '../fs/atomic.js';
import { selfIdentity } from '../process-identity.js';
import { describeExit, switchTo } from './activation.js';
import { openConfirmation, waitForConfirmation, windowWanted } from './confirm-wait.js';
import { type ConfirmWindow, closeWindow } from './confirm-window.js';
import { classifyActivation } from './guidance.js';
import { failedUnits, type HealthBaseline, healthBaseline, runHealthChecks } from './health.js';
import { lastLines } from './nix.js';
import { rebootParts, systemPath } from './system.js';
import type { InProgress, TestResult } from './test-result.js';
import { type Failure, recordResult, type TestRun } from './upgrade-test-run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Step "pre-check": record the running state (failed units) that the health checks compare with. */
export async function recordBaseline(run: TestRun): Promise<HealthBaseline | Failure> {
  run.step = 'pre-check';
  const { runner, config, progress } = run.deps;
  progress.step('recording the running state');
  try {
    return await healthBaseline(runner, config);
  } catch (e) {
    return {
      failedStep: 'pre-check',
      kind: 'internal',
      error: `could not record the state before activation: ${errorMessage(e)}`,
    };
  }
}

/**
 * Step "in-progress marker", written before activation: after a crash it tells recovery
 * (recovery.ts) what to re-activate and which result to record.
 */
export function markInProgress(run: TestRun, toplevel: string): void {
  const marker: InProgress = {
    ...selfIdentity(),
    startedAt: run.startedAt,
    by: run.opts.by,
    toplevel,
    previousSystem: run.previousSystem,
    previousGeneration: run.previousGeneration,
    result: run.r,
  };
  writeJsonAtomic(run.deps.paths.testInProgress, marker);
}

/** Step "revert": re-activate the previous system and record whether it is active again. */
export async function revert(run: TestRun): Promise<void> {
  const { runner, config, log, progress } = run.deps;
  const { r, previousSystem } = run;
  progress.step('re-activating the previous system');
  log.warn('reverting', { previousSystem });
  const back = await switchTo(runner, previousSystem, 'test', log);
  const current = systemPath(config.paths.currentSystem);
  r.reverted = back.ok && current === previousSystem;
  r.checks.push({
    name: 'revert to the previous system',
    ok: r.reverted,
    output: r.reverted
      ? `${previousSystem} is active again`
      : `switch-to-configuration test: ${describeExit(back.exitCode)}; current system: ${current ?? '?'}\n${back.output}`,
  });
}

/** Step "activate": `switch-to-configuration test`; on failure, the newly failed units, then revert. */
export async function activate(
  run: TestRun,
  toplevel: string,
  baseline: HealthBaseline,
): Promise<Failure | undefined> {
  const { runner, config, log, progress } = run.deps;
  const { r } = run;
  progress.step('activating the new system (switch-to-configuration test)');
  const act = await switchTo(runner, toplevel, 'test', log);
  r.checks.push({
    name: 'activation (switch-to-configuration test)',
    ok: act.ok,
    output: `${describeExit(act.exitCode)}${act.output ? `\n${lastLines(act.output, 30)}` : ''}`,
  });
  if (!act.ok) {
    const units = await failedUnits(runner, config).catch(() => [] as string[]);
    const newly = units.filter((u) => !baseline.failedUnits.includes(u));
    await revert(run);
    return {
      failedStep: 'activate',
      kind: classifyActivation(act.output),
      error: `switch-to-configuration test: ${describeExit(act.exitCode)}${newly.length ? `; failed units: ${newly.join(', ')}` : ''}\n${lastLines(act.output, 20)}`,
      failedUnits: newly,
    };
  }
  r.rebootParts = rebootParts(toplevel, systemPath(config.paths.bootedSystem));
  r.rebootRequired = act.rebootRequired || r.rebootParts.length > 0;
  return undefined;
}

/** Step "settle + health checks": wait `settleSec`, run the checks; on failure, revert. */
export async function settleAndCheck(run: TestRun, baseline: HealthBaseline): Promise<Failure | undefined> {
  const { runner, config, log, progress } = run.deps;
  const settle = config.test.healthChecks.settleSec;
  if (settle > 0) {
    progress.step('letting units settle', `${settle}s`);
    await sleep(settle * 1000);
  }
  progress.step('health checks');
  const health = await runHealthChecks(runner, config, baseline, log);
  run.r.checks.push(...health.checks);
  const failed = health.checks.filter((c) => !c.ok);
  if (!failed.length) return undefined;
  await revert(run);
  return {
    failedStep: 'health-check',
    kind: health.newlyFailed.length && failed.length === 1 ? 'activation' : 'health',
    error: failed.map((c) => `${c.name}: ${c.output}`).join('\n'),
    failedUnits: health.newlyFailed,
  };
}

/**
 * The dead-man window (apply.confirm), opened right after the activation so that the health checks
 * run inside it: wait for evidence from outside; none in time, re-activate the previous system.
 */
async function confirmActivation(run: TestRun, w: ConfirmWindow): Promise<Failure | undefined> {
  const { r } = run;
  const outcome = await waitForConfirmation(run.deps, w);
  r.checks.push({
    name: 'confirmation window',
    ok: outcome.confirmed,
    output: outcome.confirmed ? outcome.by : outcome.reason,
  });
  if (outcome.confirmed) {
    r.confirmedBy = outcome.by;
    return undefined;
  }
  r.reason = outcome.reason;
  await revert(run);
  return { failedStep: 'confirm', kind: 'not-confirmed', error: outcome.reason };
}

/**
 * Activate, settle, health-check, wait for confirmation (when apply.confirm asks) and record.
 * Anything that goes wrong once the new system may be active (even while recording) reverts to
 * the previous system and is recorded as FAILED. A window is closed only once the result is
 * recorded: until then, recovery would find it with the in-progress marker.
 */
export async function activateAndCheck(
  run: TestRun,
  toplevel: string,
  baseline: HealthBaseline,
): Promise<TestResult> {
  let w: ConfirmWindow | undefined;
  const finish = (r: TestResult) => {
    if (w) closeWindow(run.deps.paths, w);
    return r;
  };
  try {
    let failure = await activate(run, toplevel, baseline);
    if (!failure && windowWanted(run.deps))
      w = openConfirmation(run.deps, {
        operation: 'upgrade-test',
        activated: toplevel,
        previousSystem: run.previousSystem,
        previousGeneration: run.previousGeneration,
      });
    failure ??= await settleAndCheck(run, baseline);
    if (!failure && w) failure = await confirmActivation(run, w);
    if (failure) return finish(recordResult(run, failure));
  } catch (e) {
    run.deps.log.error('test crashed after activation', { error: errorMessage(e) });
    await revert(run).catch((x) => run.deps.log.error('revert failed', { error: errorMessage(x) }));
    return finish(recordResult(run, { failedStep: 'activate', kind: 'internal', error: errorMessage(e) }));
  }
  return finish(recordResult(run, 'passed'));
}
