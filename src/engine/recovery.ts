import { rmSync } from 'node:fs';
import { actorLabel } from '../audit.js';
import { errorMessage, isHvError } from '../errors.js';
import { acquireLock } from '../lock.js';
import type { CommandContext } from '../ports/command.js';
import { isRunning } from '../process-identity.js';
import { readRecord, removeFiles } from '../state.js';
import { describeExit, switchTo } from './activation.js';
import { windowVerdict } from './confirm-recovery.js';
import { closeWindow } from './confirm-window.js';
import { guidanceFor } from './guidance.js';
import { InProgressRecord } from './records.js';
import { systemPath } from './system.js';
import { type InProgress, type TestResult, testEvent, writeTestResult } from './test-result.js';

/**
 * Finish an upgrade test whose process died (killed, crash, power loss) after it recorded
 * `upgrade-test-in-progress.json` (its process is gone, ran in a previous boot, or its PID now names
 * another process): re-activate the previous system if the untested toplevel is still active,
 * record the result as FAILED with reason `interrupted`, notify and audit. Runs under the
 * operation lock; does nothing while another live operation holds it.
 */
export async function recoverInterruptedTest(ctx: CommandContext): Promise<TestResult | null> {
  const { config, services } = ctx;
  const { paths } = services;
  const first = readRecord<InProgress>(paths.testInProgress, InProgressRecord, 'the interrupted-test marker');
  if (!first || isRunning(first)) return null;
  const by = actorLabel(ctx.actor);
  let lock: ReturnType<typeof acquireLock>;
  try {
    lock = acquireLock(paths.dir, 'upgrade-test recovery', by);
  } catch (e) {
    if (isHvError(e) && e.code === 'busy') return null;
    throw e;
  }
  try {
    const marker = readRecord<InProgress>(
      paths.testInProgress,
      InProgressRecord,
      'the interrupted-test marker',
    );
    if (!marker || isRunning(marker)) return null; // handled meanwhile
    const log = services.opLog('upgrade-test');
    log.warn('interrupted upgrade test found', { pid: marker.pid, startedAt: marker.startedAt });
    services.log('warn', 'recovering an interrupted upgrade test', {
      pid: marker.pid,
      startedAt: marker.startedAt,
    });
    // Complete whatever the marker lacks, so that the recorded result is a valid one.
    const r: TestResult = {
      status: 'failed',
      host: config.host,
      finishedAt: marker.startedAt,
      input: config.flake.input,
      oldRev: undefined,
      oldLastModified: undefined,
      newRev: undefined,
      newLastModified: undefined,
      liveLockSha256: '',
      testedLock: undefined,
      testedLockSha256: undefined,
      stagingInputsHash: '',
      stagingFiles: {},
      stagingDir: '',
      version: undefined,
      gcRoot: undefined,
      reverted: false,
      rebootRequired: false,
      rebootParts: [],
      downgradeAllowed: false,
      log: log.file,
      ...marker.result,
      startedAt: marker.result.startedAt ?? marker.startedAt,
      toplevel: marker.result.toplevel ?? marker.toplevel,
      previousSystem: marker.result.previousSystem ?? marker.previousSystem,
      previousGeneration: marker.result.previousGeneration ?? marker.previousGeneration,
      checks: [...(marker.result.checks ?? [])],
    };
    const current = systemPath(config.paths.currentSystem);
    let reverted = false;
    if (marker.previousSystem && current === marker.toplevel && current !== marker.previousSystem) {
      ctx.progress.step('re-activating the previous system after an interrupted test');
      const back = await switchTo(services.runner, marker.previousSystem, 'test', log);
      reverted = back.ok && systemPath(config.paths.currentSystem) === marker.previousSystem;
      r.checks.push({
        name: 'revert to the previous system',
        ok: reverted,
        output: reverted
          ? `${marker.previousSystem} is active again`
          : `switch-to-configuration test: ${describeExit(back.exitCode)}\n${back.output}`,
      });
    } else {
      r.checks.push({
        name: 'revert to the previous system',
        ok: current === marker.previousSystem,
        output: `not needed: the current system is ${current ?? '?'}`,
      });
    }
    // Killed inside its confirmation window (apply.confirm): say so; the revert is the same.
    const window = windowVerdict(paths, 'upgrade-test', marker.toplevel);
    const unconfirmed = window.window && !window.confirmed;
    r.status = 'failed';
    r.reason = unconfirmed ? window.reason : 'interrupted';
    r.failureKind = unconfirmed ? 'not-confirmed' : 'interrupted';
    r.failedStep = window.window ? 'confirm' : (r.failedStep ?? 'activate');
    r.reverted = reverted;
    r.error = `the upgrade test (pid ${marker.pid}, started ${marker.startedAt} by ${marker.by}) was interrupted before it recorded a result${unconfirmed ? `: ${window.reason}` : ''}; found by ${by}`;
    r.guidance = guidanceFor(unconfirmed ? 'not-confirmed' : 'interrupted', { log: log.file });
    if (window.window)
      r.checks.push({
        name: 'confirmation window',
        ok: false,
        output: window.confirmed ? `${window.confirmed}, but the test did not finish` : window.reason,
      });
    r.finishedAt = services.now().toISOString();
    if (r.gcRoot) rmSync(r.gcRoot, { force: true });
    r.gcRoot = undefined;
    writeTestResult(paths, r);
    removeFiles(paths.testInProgress);
    if (window.window) closeWindow(paths, window.window);
    log.info('upgrade test finished', { status: 'failed', reason: 'interrupted', reverted });
    await services.audit.append({
      actor: ctx.actor,
      operation: 'upgrade-test',
      result: 'failed',
      requestId: ctx.requestId,
      details: { reason: r.reason, pid: marker.pid, startedAt: marker.startedAt, reverted },
    });
    try {
      const hub = await services.hub();
      await hub.publish([testEvent(config, r, paths, services.now())]);
    } catch (e) {
      services.log('error', 'notification failed', { error: errorMessage(e) });
    }
    return r;
  } finally {
    lock.release();
  }
}
