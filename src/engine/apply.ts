import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HV } from '../cli-name.js';
import { HvError, isHvError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../fs/atomic.js';
import type { StatePaths } from '../state.js';
import { readRecord } from '../state.js';
import { describeExit, switchTo } from './activation.js';
import { makeBackup } from './backup.js';
import type { OperationDeps } from './check.js';
import type { ClosureDiff } from './closure-diff.js';
import { markNotConfirmed, type NotConfirmed, switchBack } from './confirm-revert.js';
import { openConfirmation, waitForConfirmation, windowWanted } from './confirm-wait.js';
import { closeWindow } from './confirm-window.js';
import { type Downgrade, downgradeLine, downgradeOf } from './downgrade.js';
import { sha256 } from './flake-lock.js';
import { lastLines, storePathValid } from './nix.js';
import { type JournalRecord, OperationJournal } from './op-journal.js';
import { UpgradeRecordSchema } from './records.js';
import { flakeDirChanges, testedFlakeNixIntact } from './release-upgrade.js';
import { currentGeneration, rebootParts, systemPath } from './system.js';
import { recordSystemLock } from './system-locks.js';
import { invalidateTestResult, readTestResult, type TestResult } from './test-result.js';

/** What system-upgrade (and rollback) run with. */
export type ApplyDeps = OperationDeps;

/** `<state>/last-upgrade.json`: what `hv rollback` returns to. */
export interface UpgradeRecord {
  status: 'activating' | 'applied' | 'failed';
  startedAt: string;
  finishedAt: string | undefined;
  by: string;
  operation: 'switch' | 'boot';
  /** The generation and system that ran before: the rollback target. */
  previousGeneration: number | undefined;
  previousSystem: string | undefined;
  newGeneration: number | undefined;
  toplevel: string;
  version: string | undefined;
  input: string;
  oldRev: string | undefined;
  newRev: string | undefined;
  testStartedAt: string;
  backupDir: string;
  activationExit: number | undefined;
  rebootRequired: boolean;
  rebootParts: string[];
  error?: string;
  rolledBackAt?: string;
  /** The tested system is a downgrade (passed with --allow-downgrade): what it goes from and to. */
  downgrade?: Downgrade;
  /** `DOWNGRADE: <old> → <new> (<input> <rev> → <rev>)`, for every message about it. */
  downgradeLine?: string;
  /** Set when the operation was killed and a later hv command reconciled the host. */
  interrupted?: Interruption;
  /** A release upgrade: flake.nix was installed with the lock (the input now follows `toRef`). */
  release?: { from: string; to: string; fromRef: string; toRef: string };
  /** apply.confirm: what confirmed the activation, e.g. "confirmed by chat reconnection (slack)". */
  confirmedBy?: string;
  /** apply.confirm: nobody confirmed in time; the previous generation, system and lock came back. */
  notConfirmed?: NotConfirmed;
  /** What the tested system changes (from the test result, running → tested), when it was known. */
  changes?: ClosureDiff;
}

/** What the reconciler found and did about an operation that never finished. */
export interface Interruption {
  /** The last step the operation recorded before it died. */
  step: string;
  /** finished: brought forward to the new system; undone: back to the old one; nothing-changed. */
  outcome: 'finished' | 'undone' | 'nothing-changed';
  detail: string;
  reconciledAt: string;
  reconciledBy: string;
}

function refuse(gate: string, message: string): never {
  throw new HvError('refused', `refused (gate "${gate}"): ${message}`, { gate });
}

const AGAIN = `run "${HV} upgrade-test" again, then "${HV} system-upgrade"`;

/**
 * The apply gates of SPEC: a PASSED result, young enough, flake dir and lock unchanged since the
 * test, the system unchanged since the test, the tested store path still valid. Returns the result
 * it approves; throws HvError('refused') naming the gate otherwise.
 */
export async function checkGates(deps: ApplyDeps): Promise<TestResult> {
  const { config, runner, now, paths } = deps;
  let r: TestResult | null;
  try {
    r = readTestResult(paths);
  } catch (e) {
    // A damaged or foreign result approves nothing.
    if (isHvError(e) && e.code === 'state-corrupt') refuse('tested', `${e.message}; then ${AGAIN}`);
    throw e;
  }
  // system-upgrade overwrites last-upgrade.json: a damaged one would silently lose what it recorded.
  try {
    readLastUpgrade(paths);
  } catch (e) {
    if (isHvError(e) && e.code === 'state-corrupt')
      refuse(
        'records readable',
        `${e.message}; system-upgrade would overwrite it (once moved aside, "${HV} rollback --to N" still names a generation to return to)`,
      );
    throw e;
  }
  if (!r)
    refuse('tested', `there is no upgrade test result (${paths.testJson}); run "${HV} upgrade-test" first`);
  if (r.status !== 'passed')
    refuse(
      'passed',
      `the last upgrade test FAILED${r.failedStep ? ` at ${r.failedStep}` : ''}${r.reason ? ` (${r.reason})` : ''} on ${r.finishedAt}; fix the cause (see ${paths.testText}) and ${AGAIN}`,
    );
  if (r.invalidated)
    refuse(
      'not invalidated',
      `the PASSED test of ${r.finishedAt} no longer approves an upgrade: ${r.invalidated.reason} (${r.invalidated.at}, by ${r.invalidated.by}); ${AGAIN}`,
    );
  if (!r.toplevel || !r.testedLock)
    refuse('passed', `the test result ${paths.testJson} does not name a tested system and lock; ${AGAIN}`);
  const ageDays = (now().getTime() - Date.parse(r.finishedAt)) / 86_400_000;
  if (!(ageDays <= config.test.maxAgeDays))
    refuse(
      'fresh',
      `the PASSED test finished ${r.finishedAt} (${Number.isFinite(ageDays) ? `${ageDays.toFixed(1)} days ago` : 'at an unreadable time'}), older than test.maxAgeDays = ${config.test.maxAgeDays}; ${AGAIN}`,
    );
  // A release test changed flake.nix in its staging copy: that file is checked against the live one
  // the test started from, and what gets installed must be what the test built.
  if (r.release && !testedFlakeNixIntact(r.stagingFiles ?? {}, r.release))
    refuse(
      'flake unchanged',
      `the flake.nix recorded in ${paths.testJson} is not the one the release test built; ${AGAIN}`,
    );
  const changed = flakeDirChanges(config.flake.dir, r.stagingFiles ?? {}, r.release);
  if (changed.length)
    refuse(
      'flake unchanged',
      `${config.flake.dir} changed since the test (${changed.slice(0, 10).join(', ')}${changed.length > 10 ? ', …' : ''}); the tested system no longer matches it; ${AGAIN}`,
    );
  let liveLock: string | null = null;
  try {
    liveLock = readFileSync(join(config.flake.dir, 'flake.lock'), 'utf8');
  } catch {
    liveLock = null;
  }
  if (liveLock === null || sha256(liveLock) !== r.liveLockSha256)
    refuse(
      'flake unchanged',
      `${join(config.flake.dir, 'flake.lock')} changed since the test (someone updated or edited it); ${AGAIN}`,
    );
  const generation = currentGeneration(config.paths.profile);
  if (generation !== r.previousGeneration)
    refuse(
      'system unchanged',
      `the system profile ${config.paths.profile} is at generation ${generation ?? '?'}, but the test started from generation ${r.previousGeneration ?? '?'} (the system was switched since the test); ${AGAIN}`,
    );
  const current = systemPath(config.paths.currentSystem);
  if (current !== r.previousSystem && current !== r.toplevel)
    refuse(
      'system unchanged',
      `the running system ${current ?? '?'} is neither the one the test started from (${r.previousSystem}) nor the tested one; ${AGAIN}`,
    );
  if (!existsSync(r.toplevel) || !(await storePathValid(runner, config, r.toplevel)))
    refuse(
      'tested system present',
      `the tested system ${r.toplevel} is no longer in the Nix store (garbage-collected?); ${AGAIN}`,
    );
  return r;
}

/**
 * Apply exactly the tested system. Every step is journalled before it happens
 * (`op-journal.ts`): back up, add the tested system as a profile generation, install the tested
 * lock (only once the profile points at it), activate with `switch` (or `boot`). Exit 4 of the
 * activation leaves the new generation in place and reports the upgrade as failed (the admin
 * decides: fix the unit or `hv rollback`).
 */
export async function applyTested(deps: ApplyDeps, by: string): Promise<UpgradeRecord> {
  const { config, runner, now, paths, log, progress } = deps;
  const r = await checkGates(deps);
  const toplevel = r.toplevel as string;
  const testedLock = r.testedLock as string;
  const startedAt = now().toISOString();
  log.info('system upgrade started', { toplevel, by, operation: config.apply.operation });

  progress.step('backing up flake.lock, the flake dir and backup.paths');
  const previousSystem = systemPath(config.paths.profile);
  const previousGeneration = currentGeneration(config.paths.profile);
  const backup = makeBackup({
    backupsRoot: paths.backups,
    flakeDir: config.flake.dir,
    extraPaths: config.backup.paths,
    system: previousSystem,
    generation: previousGeneration,
    keep: config.backup.keep,
    now: now(),
    installing: {
      system: toplevel,
      lock: testedLock,
      ...(r.release ? { flakeNix: r.release.flakeNix } : {}),
    },
  });
  log.info('backup made', { dir: backup.dir, paths: backup.paths.map((p) => p.source) });
  const journal = OperationJournal.begin(
    paths,
    {
      operation: 'system-upgrade',
      startedAt,
      by,
      action: config.apply.operation,
      step: 'backup',
      from: {
        generation: previousGeneration,
        system: previousSystem,
        lockSha256: backup.lockSha256,
        lockFile: backup.lockSha256 ? join(backup.dir, 'flake.lock') : undefined,
        // A release upgrade installs flake.nix too: both sides name theirs, so either can be restored.
        ...(r.release && backup.flakeNixSha256 ? { flakeNixFile: join(backup.dir, 'flake.nix') } : {}),
      },
      to: {
        generation: undefined,
        system: toplevel,
        lockSha256: sha256(testedLock),
        lockFile: join(backup.dir, 'installed-flake.lock'),
        ...(r.release ? { flakeNixFile: join(backup.dir, 'installed-flake.nix') } : {}),
      },
      backupDir: backup.dir,
    },
    now,
  );

  progress.step('adding the tested system as a profile generation');
  journal.step('set-profile');
  const set = await runner.run([config.tools.nixEnv, '-p', config.paths.profile, '--set', toplevel], {
    timeoutMs: 10 * 60_000,
    onLine: (l) => log.output(l),
  });
  if (set.exitCode !== 0 || systemPath(config.paths.profile) !== toplevel) {
    // The lock is installed only after this step: nothing changed.
    journal.close();
    log.error('nix-env --set failed', { exitCode: set.exitCode });
    throw new HvError(
      'nix-failed',
      `nix-env -p ${config.paths.profile} --set ${toplevel} failed (exit ${set.exitCode}); nothing was changed: ${lastLines(set.spawnError ?? set.stderr, 10)}`,
    );
  }
  const newGeneration = currentGeneration(config.paths.profile);
  journal.step('install-lock', { to: { ...journal.record.to, generation: newGeneration } });
  if (r.release) {
    progress.step(`installing the tested flake.nix (${r.input} follows ${r.release.toRef})`);
    writeFileAtomic(join(config.flake.dir, 'flake.nix'), r.release.flakeNix);
  }
  progress.step('installing the tested flake.lock');
  writeFileAtomic(join(config.flake.dir, 'flake.lock'), testedLock);
  // From now on hv knows which lock produced this system (check-updates compares with it).
  recordSystemLock(paths, toplevel, testedLock, r.release ? { flakeNix: r.release.flakeNix } : {});

  const rec: UpgradeRecord = {
    status: 'activating',
    startedAt,
    finishedAt: undefined,
    by,
    operation: config.apply.operation,
    previousGeneration,
    previousSystem,
    newGeneration,
    toplevel,
    version: r.version,
    input: r.input,
    oldRev: r.oldRev,
    newRev: r.newRev,
    testStartedAt: r.startedAt,
    backupDir: backup.dir,
    activationExit: undefined,
    rebootRequired: false,
    rebootParts: [],
  };
  if (r.changes) rec.changes = r.changes;
  if (r.release) {
    const { from, to, fromRef, toRef } = r.release;
    rec.release = { from, to, fromRef, toRef };
  }
  const downgrade = downgradeOf(r);
  if (downgrade) {
    rec.downgrade = downgrade;
    rec.downgradeLine = downgradeLine(downgrade, r.input);
    log.warn('downgrade applied', { downgrade: rec.downgradeLine });
  }
  writeJsonAtomic(paths.lastUpgrade, rec, 0o600);
  journal.step('activate');
  await activateUpgrade(deps, rec);
  // `boot` changes nothing that runs now: there is nothing to confirm until the next boot.
  if (windowWanted(deps) && rec.operation === 'switch') await confirmUpgrade(deps, journal, rec);
  journal.close();
  return rec;
}

/**
 * The dead-man window after `switch` (apply.confirm): wait for evidence; confirmed, the upgrade
 * stays; not confirmed, the previous generation, system and lock come back (`undoUnconfirmedUpgrade`).
 * The journal stays open (steps `confirm`, `revert`) until the outcome is recorded, and the window
 * until the journal is closed, so that a crash anywhere in here is finished by recovery.
 */
async function confirmUpgrade(deps: ApplyDeps, journal: OperationJournal, rec: UpgradeRecord): Promise<void> {
  journal.step('confirm');
  const w = openConfirmation(deps, {
    operation: 'system-upgrade',
    activated: rec.toplevel,
    previousSystem: rec.previousSystem ?? '',
    previousGeneration: rec.previousGeneration,
  });
  const outcome = await waitForConfirmation(deps, w);
  if (outcome.confirmed) {
    rec.confirmedBy = outcome.by;
    writeJsonAtomic(deps.paths.lastUpgrade, rec, 0o600);
  } else {
    journal.step('revert', { notConfirmed: outcome.reason });
    await undoUnconfirmedUpgrade(deps, journal.record, rec, outcome.reason);
  }
  journal.close();
  closeWindow(deps.paths, w);
}

/**
 * Undo an unconfirmed upgrade (`switchBack`) and record it: `last-upgrade.json` FAILED with the
 * reason, and the PASSED test no longer approves that system (it cut the host off, or nobody could
 * say it did not). Shared with the reconciler (a crash or reboot inside the window).
 */
export async function undoUnconfirmedUpgrade(
  deps: ApplyDeps,
  j: JournalRecord,
  rec: UpgradeRecord,
  reason: string,
): Promise<UpgradeRecord> {
  const { paths, now } = deps;
  const back = await switchBack(deps, j);
  const at = now().toISOString();
  markNotConfirmed(rec, reason, back, at);
  rec.finishedAt = at;
  writeJsonAtomic(paths.lastUpgrade, rec, 0o600);
  invalidateTestResult(paths, {
    at,
    by: rec.by,
    reason: `${HV} system-upgrade to ${rec.toplevel} was undone: ${reason}`,
  });
  return rec;
}

/**
 * Activate the new generation of `rec` (`switch-to-configuration switch|boot`) and record the
 * outcome in `last-upgrade.json`. Shared by `system-upgrade` and the reconciler that finishes an
 * interrupted one.
 */
export async function activateUpgrade(deps: ApplyDeps, rec: UpgradeRecord): Promise<UpgradeRecord> {
  const { config, runner, now, paths, log, progress } = deps;
  progress.step(`activating (switch-to-configuration ${rec.operation})`);
  const act = await switchTo(runner, rec.toplevel, rec.operation, log);
  rec.activationExit = act.exitCode;
  rec.rebootParts = rebootParts(rec.toplevel, systemPath(config.paths.bootedSystem));
  rec.rebootRequired = act.rebootRequired || rec.operation === 'boot' || rec.rebootParts.length > 0;
  rec.status = act.ok ? 'applied' : 'failed';
  if (rec.status === 'failed')
    rec.error = `switch-to-configuration ${rec.operation}: ${describeExit(act.exitCode)}\n${lastLines(act.output, 20)}`;
  rec.finishedAt = now().toISOString();
  writeJsonAtomic(paths.lastUpgrade, rec, 0o600);
  log.info('system upgrade finished', {
    status: rec.status,
    generation: rec.newGeneration,
    previousGeneration: rec.previousGeneration,
    activationExit: act.exitCode,
  });
  return rec;
}

export function readLastUpgrade(paths: StatePaths): UpgradeRecord | null {
  return readRecord<UpgradeRecord>(paths.lastUpgrade, UpgradeRecordSchema, 'the last upgrade record');
}
