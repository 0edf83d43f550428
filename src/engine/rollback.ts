import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HV } from '../cli-name.js';
import { HvError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../fs/atomic.js';
import type { StatePaths } from '../state.js';
import { describeExit, switchTo } from './activation.js';
import { type ApplyDeps, type Interruption, readLastUpgrade, type UpgradeRecord } from './apply.js';
import { backedUpFlakeNix, findLockForSystem, type SavedFlake } from './backup.js';
import { markNotConfirmed, type NotConfirmed, switchBack } from './confirm-revert.js';
import { openConfirmation, waitForConfirmation, windowWanted } from './confirm-wait.js';
import { closeWindow } from './confirm-window.js';
import { type FlakeLock, flakeRefUrl, lockedInput, sha256 } from './flake-lock.js';
import { lastLines } from './nix.js';
import { type JournalRecord, OperationJournal } from './op-journal.js';
import { currentGeneration, listGenerations, rebootParts, systemPath } from './system.js';
import { recordedLock, recordSystemLock } from './system-locks.js';
import { invalidateTestResult } from './test-result.js';

/** What `hv rollback` did. */
export interface RollbackRecord {
  status: 'rolled-back' | 'failed';
  at: string;
  by: string;
  fromGeneration: number | undefined;
  generation: number;
  system: string;
  /** The backup whose flake.lock was put back, if any matched the target system. */
  lockRestoredFrom: string | undefined;
  lockRestored: boolean;
  activationExit: number;
  rebootRequired: boolean;
  rebootParts: string[];
  /**
   * flake.nix was put back too (the rollback undoes a release upgrade: the target's lock follows
   * another branch than the live one), from this file; the replaced one is kept in `flakeNixReplaced`.
   */
  flakeNixRestoredFrom?: string;
  flakeNixReplaced?: string;
  /** The PASSED test result was invalidated by this rollback. */
  testInvalidated: boolean;
  error?: string;
  interrupted?: Interruption;
  /** apply.confirm: what confirmed the activation of the rollback target. */
  confirmedBy?: string;
  /** apply.confirm: nobody confirmed in time; what ran before the rollback came back. */
  notConfirmed?: NotConfirmed;
}

/**
 * Return to a recorded generation: `--to N`, else the generation recorded before the last
 * system-upgrade. Switches the profile explicitly (`--switch-generation N`, never a relative
 * `--rollback`), activates it with `switch`, and restores the flake.lock backed up with that system.
 */
export async function rollbackTo(
  deps: ApplyDeps,
  by: string,
  to: number | undefined,
): Promise<RollbackRecord> {
  const { config, runner, now, paths, log, progress } = deps;
  const last = readLastUpgrade(paths);
  const generations = listGenerations(config.paths.profile);
  const list = generations.map((g) => g.number).join(', ') || 'none';
  const target = to ?? last?.previousGeneration;
  if (target === undefined)
    throw new HvError(
      'refused',
      `refused: nothing recorded to roll back to (no "${HV} system-upgrade" recorded a previous generation in ${paths.lastUpgrade}); use "${HV} rollback --to N" with one of the generations: ${list}`,
      { gate: 'recorded' },
    );
  const gen = generations.find((g) => g.number === target);
  if (!gen?.path)
    throw new HvError(
      'refused',
      `refused: generation ${target} of ${config.paths.profile} does not exist; generations are: ${list}`,
      { gate: 'generation exists', generations: generations.map((g) => g.number) },
    );
  const fromGeneration = currentGeneration(config.paths.profile);
  const fromSystem = systemPath(config.paths.profile);
  log.info('rollback started', { by, from: fromGeneration, to: target, system: gen.path });

  const saved = lockForRollbackTarget(paths, last, target, gen.path);
  if (saved) writeFileAtomic(paths.journalToLock, saved.text, 0o600);

  // Keep the live lock too, so that the journal can name both sides.
  const liveLock = readOrNull(join(config.flake.dir, 'flake.lock'));
  if (liveLock !== null) writeFileAtomic(paths.journalFromLock, liveLock, 0o600);
  // flake.nix comes back with the lock when they would disagree otherwise (see flakeNixToRestore).
  const nixFile = saved
    ? flakeNixToRestore(config.flake.dir, config.flake.input, liveLock, saved)
    : undefined;
  let liveNixCopy: string | undefined;
  if (nixFile) {
    liveNixCopy = join(paths.dir, 'rollback-replaced-flake.nix');
    writeFileAtomic(liveNixCopy, readFileSync(join(config.flake.dir, 'flake.nix')), 0o600);
  }
  const journal = OperationJournal.begin(
    paths,
    {
      operation: 'rollback',
      startedAt: now().toISOString(),
      by,
      action: 'switch',
      step: 'switch-profile',
      from: {
        generation: fromGeneration,
        system: fromSystem,
        lockSha256: liveLock === null ? undefined : sha256(liveLock),
        lockFile: liveLock === null ? undefined : paths.journalFromLock,
        ...(liveNixCopy ? { flakeNixFile: liveNixCopy } : {}),
      },
      to: {
        generation: target,
        system: gen.path,
        lockSha256: saved ? sha256(saved.text) : undefined,
        lockFile: saved ? paths.journalToLock : undefined,
        lockSource: saved?.from,
        ...(nixFile ? { flakeNixFile: nixFile } : {}),
      },
    },
    now,
  );

  progress.step(`switching the profile to generation ${target}`);
  const sw = await runner.run(
    [config.tools.nixEnv, '-p', config.paths.profile, '--switch-generation', String(target)],
    { timeoutMs: 10 * 60_000, onLine: (l) => log.output(l) },
  );
  if (sw.exitCode !== 0 || currentGeneration(config.paths.profile) !== target) {
    journal.close();
    throw new HvError(
      'nix-failed',
      `nix-env -p ${config.paths.profile} --switch-generation ${target} failed (exit ${sw.exitCode}); nothing was changed: ${lastLines(sw.spawnError ?? sw.stderr, 10)}`,
    );
  }
  journal.step('activate');
  const rec = await activateRollback(deps, journal.record, () => journal.step('restore-lock'));
  if (windowWanted(deps)) await confirmRollback(deps, journal, rec);
  journal.close();
  return rec;
}

/**
 * The dead-man window after the rollback's `switch` (apply.confirm), as for system-upgrade
 * (apply.ts confirmUpgrade): not confirmed in time, the system that ran before the rollback comes
 * back with its lock. The journal (with the copies of both locks) stays until that is recorded.
 */
async function confirmRollback(
  deps: ApplyDeps,
  journal: OperationJournal,
  rec: RollbackRecord,
): Promise<void> {
  const j = journal.record;
  journal.step('confirm');
  const w = openConfirmation(deps, {
    operation: 'rollback',
    activated: rec.system,
    previousSystem: j.from.system ?? '',
    previousGeneration: j.from.generation,
  });
  const outcome = await waitForConfirmation(deps, w);
  if (outcome.confirmed) {
    rec.confirmedBy = outcome.by;
    writeJsonAtomic(deps.paths.lastRollback, rec, 0o600);
  } else {
    journal.step('revert', { notConfirmed: outcome.reason });
    await undoUnconfirmedRollback(deps, j, rec, outcome.reason);
  }
  journal.close();
  closeWindow(deps.paths, w);
}

/**
 * Undo an unconfirmed rollback (`switchBack` to the journal's `from` side: what ran before it) and
 * record it in `last-rollback.json` (FAILED, with the reason); the last upgrade is no longer marked
 * rolled back. Shared with the reconciler (a crash or reboot inside the window).
 */
export async function undoUnconfirmedRollback(
  deps: ApplyDeps,
  j: JournalRecord,
  rec: RollbackRecord,
  reason: string,
): Promise<RollbackRecord> {
  const { paths, now } = deps;
  const back = await switchBack(deps, j);
  const at = now().toISOString();
  markNotConfirmed(rec, reason, back, at);
  writeJsonAtomic(paths.lastRollback, rec, 0o600);
  const last = readLastUpgrade(paths);
  if (last?.rolledBackAt && last.rolledBackAt === rec.at) {
    const { rolledBackAt: _, ...rest } = last;
    writeJsonAtomic(paths.lastUpgrade, rest, 0o600);
  }
  return rec;
}

/**
 * Activate the rollback target recorded in `j` (its profile generation is already current),
 * restore its flake.lock, invalidate the PASSED test result and record `last-rollback.json`.
 * Shared by `rollback` and the reconciler that finishes an interrupted one.
 */
export async function activateRollback(
  deps: ApplyDeps,
  j: JournalRecord,
  beforeLock: () => void = () => {},
  interrupted?: Interruption,
): Promise<RollbackRecord> {
  const { config, runner, now, paths, log, progress } = deps;
  const target = j.to.generation as number;
  const system = j.to.system as string;
  progress.step(`activating generation ${target} (switch-to-configuration switch)`);
  const act = await switchTo(runner, system, 'switch', log);

  beforeLock();
  // flake.nix first: the lock that follows it then matches the url it names.
  let flakeNixRestored = false;
  if (j.to.flakeNixFile && existsSync(j.to.flakeNixFile)) {
    progress.step('restoring the flake.nix of that generation');
    writeFileAtomic(join(config.flake.dir, 'flake.nix'), readFileSync(j.to.flakeNixFile));
    flakeNixRestored = true;
    log.info('flake.nix restored', { from: j.to.flakeNixFile });
  }
  let lockRestored = false;
  if (j.to.lockFile && existsSync(j.to.lockFile)) {
    progress.step('restoring the flake.lock of that generation');
    const text = readFileSync(j.to.lockFile, 'utf8');
    writeFileAtomic(join(config.flake.dir, 'flake.lock'), text);
    recordSystemLock(paths, system, text);
    lockRestored = true;
    log.info('flake.lock restored', { from: j.to.lockFile });
  } else {
    log.warn('no backed-up flake.lock for the target generation', { generation: target });
  }
  const at = now().toISOString();
  const invalidated = invalidateTestResult(paths, {
    at,
    by: j.by,
    reason: `${HV} rollback from generation ${j.from.generation ?? '?'} to generation ${target}`,
  });

  const rec: RollbackRecord = {
    status: act.ok ? 'rolled-back' : 'failed',
    at,
    by: j.by,
    fromGeneration: j.from.generation,
    generation: target,
    system,
    lockRestoredFrom: lockRestored ? (j.to.lockSource ?? j.to.lockFile) : undefined,
    lockRestored,
    ...(flakeNixRestored
      ? { flakeNixRestoredFrom: j.to.flakeNixFile, flakeNixReplaced: j.from.flakeNixFile }
      : {}),
    activationExit: act.exitCode,
    rebootParts: rebootParts(system, systemPath(config.paths.bootedSystem)),
    rebootRequired: false,
    testInvalidated: invalidated,
    ...(interrupted ? { interrupted } : {}),
  };
  rec.rebootRequired = act.rebootRequired || rec.rebootParts.length > 0;
  if (!act.ok)
    rec.error = `switch-to-configuration switch: ${describeExit(act.exitCode)}\n${lastLines(act.output, 20)}`;
  const last = readLastUpgrade(paths);
  if (last && target === last.previousGeneration)
    writeJsonAtomic(paths.lastUpgrade, { ...last, rolledBackAt: rec.at }, 0o600);
  writeJsonAtomic(paths.lastRollback, rec, 0o600);
  log.info('rollback finished', { status: rec.status, generation: target, lockRestored });
  return rec;
}

/**
 * The flake.lock (and flake.nix) that belong to a rollback target. The lock: what hv recorded when
 * that system became the running one, else the last upgrade's backup when returning to the
 * generation it replaced, else the newest backup that knows that system. `from` says where it came
 * from, for people; `flakeNix` is the backed-up flake.nix of that system, if any.
 */
export function lockForRollbackTarget(
  paths: StatePaths,
  last: UpgradeRecord | null,
  target: number,
  system: string,
): { text: string; from: string; flakeNix: string | undefined } | undefined {
  const backup: SavedFlake | undefined =
    last &&
    target === last.previousGeneration &&
    last.backupDir &&
    existsSync(join(last.backupDir, 'flake.lock'))
      ? {
          file: join(last.backupDir, 'flake.lock'),
          backup: last.backupDir,
          flakeNix: backedUpFlakeNix(last.backupDir),
        }
      : findLockForSystem(paths.backups, system);
  const recorded = recordedLock(paths, system);
  if (recorded) return { text: recorded.lock, from: `hv's record of ${system}`, flakeNix: backup?.flakeNix };
  return backup
    ? { text: readFileSync(backup.file, 'utf8'), from: backup.file, flakeNix: backup.flakeNix }
    : undefined;
}

/**
 * The flake.nix to put back with the target's lock, if any. hv installs flake.nix only in a release
 * upgrade, so it restores it only when undoing one: when the restored lock's tracked input follows
 * another source or branch than the live lock's. Otherwise the live flake.nix (and the admin's
 * edits in it) stays, as every other file of the flake dir does.
 */
export function flakeNixToRestore(
  dir: string,
  input: string,
  liveLock: string | null,
  saved: { text: string; flakeNix: string | undefined },
): string | undefined {
  if (!saved.flakeNix) return undefined;
  const source = (text: string | null) => {
    if (text === null) return undefined;
    try {
      const lock: FlakeLock = { text, sha256: sha256(text), json: JSON.parse(text) };
      return flakeRefUrl(lockedInput(lock, input).original);
    } catch {
      return undefined;
    }
  };
  const target = source(saved.text);
  if (target === undefined || target === source(liveLock)) return undefined;
  const live = readOrNull(join(dir, 'flake.nix'));
  return live !== null && live === readOrNull(saved.flakeNix) ? undefined : saved.flakeNix;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
