import { existsSync, readFileSync } from 'node:fs';
import { describeExit, switchTo } from './activation.js';
import type { OperationDeps } from './check.js';
import { filesOf, restoreLock, setProfile } from './journal-restore.js';
import { lastLines } from './nix.js';
import type { JournalRecord } from './op-journal.js';
import { currentGeneration, systemPath } from './system.js';
import { recordSystemLock } from './system-locks.js';

/** What putting the `from` side of a journalled switch back did. */
export interface SwitchBack {
  /** The previous system runs, the profile is on its generation and the live lock is its lock. */
  ok: boolean;
  /** In words, for records and messages. */
  detail: string;
  activationExit: number | undefined;
}

/**
 * The dead-man revert of a `system-upgrade` or `rollback` whose activation was not confirmed: the
 * profile back to the generation that ran before (`--switch-generation`, never relative), that
 * system activated with `switch-to-configuration switch`, and its flake.lock (and flake.nix, for a
 * release upgrade) put back, all from the operation journal. Every step is idempotent, so that a
 * revert killed half-way is simply run again by the reconciler (journal step `revert`).
 */
export async function switchBack(deps: OperationDeps, j: JournalRecord): Promise<SwitchBack> {
  const { config, runner, paths, log, progress } = deps;
  const { generation, system } = j.from;
  const done: string[] = [];
  const problems: string[] = [];
  if (generation !== undefined && currentGeneration(config.paths.profile) !== generation) {
    progress.step(`switching the profile back to generation ${generation}`);
    const err = await setProfile(deps, ['--switch-generation', String(generation)]);
    if (err) problems.push(`could not switch the profile back to generation ${generation}: ${err}`);
    else done.push(`profile back to generation ${generation}`);
  }
  let activationExit: number | undefined;
  if (system) {
    progress.step(`re-activating generation ${generation ?? '?'} (switch-to-configuration switch)`);
    const act = await switchTo(runner, system, 'switch', log);
    activationExit = act.exitCode;
    if (act.ok) done.push(`${system} re-activated`);
    else
      problems.push(
        `switch-to-configuration switch of ${system}: ${describeExit(act.exitCode)} ${lastLines(act.output, 5)}`,
      );
  } else problems.push('the journal names no previous system to re-activate');
  const lock = restoreLock(deps, j.from);
  if (lock === 'restored') done.push(`previous ${filesOf(j.from)} restored`);
  if (lock === 'missing')
    problems.push(`the previous ${filesOf(j.from)} (${j.from.lockFile ?? '?'}) is missing`);
  if (system && j.from.lockFile && existsSync(j.from.lockFile))
    recordSystemLock(paths, system, readFileSync(j.from.lockFile, 'utf8'));
  const running = systemPath(config.paths.currentSystem);
  if (system && running !== system) problems.push(`the running system is ${running ?? '?'}, not ${system}`);
  const ok = !problems.length;
  const detail = `${done.length ? done.join(', ') : 'nothing needed changing'}${ok ? `; generation ${generation ?? '?'} runs again with its ${filesOf(j.from)}` : `. Problems: ${problems.join('; ')}`}`;
  log[ok ? 'info' : 'error']('switched back after an unconfirmed activation', { detail });
  return { ok, detail, activationExit };
}

/** Recorded on an operation that was undone because nobody confirmed its activation in time. */
export interface NotConfirmed {
  /** `not confirmed within N s: <missing evidence>` (or why the engine stopped inside the window). */
  reason: string;
  revertedAt: string;
  /** What the revert did. */
  detail: string;
  /** Whether the host is entirely back (system, profile generation, lock). */
  ok: boolean;
}

/** The fields an upgrade or rollback record gets when its unconfirmed activation was switched back. */
interface RevertedFields {
  status: string;
  notConfirmed?: NotConfirmed;
  error?: string;
  rebootRequired: boolean;
  rebootParts: string[];
}

/** Mark `rec` FAILED: not confirmed for `reason`, switched back as `back` says, at `at`. */
export function markNotConfirmed(rec: RevertedFields, reason: string, back: SwitchBack, at: string): void {
  rec.status = 'failed';
  rec.notConfirmed = { reason, revertedAt: at, detail: back.detail, ok: back.ok };
  rec.error = `${reason}; reverted: ${back.detail}`;
  rec.rebootRequired = false;
  rec.rebootParts = [];
}
