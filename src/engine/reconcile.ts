import { existsSync, readFileSync } from 'node:fs';
import { actorLabel } from '../audit.js';
import { HV } from '../cli-name.js';
import { errorMessage } from '../errors.js';
import type { HvEvent } from '../events.js';
import { writeJsonAtomic } from '../fs/atomic.js';
import type { CommandContext } from '../ports/command.js';
import { readRecord, removeFiles } from '../state.js';
import {
  type ApplyDeps,
  activateUpgrade,
  type Interruption,
  readLastUpgrade,
  type UpgradeRecord,
  undoUnconfirmedUpgrade,
} from './apply.js';
import { windowVerdict } from './confirm-recovery.js';
import { closeWindow } from './confirm-window.js';
import { filesOf, restoreLock, setProfile } from './journal-restore.js';
import { lastLines } from './nix.js';
import { type JournalRecord, readJournal, WINDOW_STEPS } from './op-journal.js';
import { rollbackEvent, upgradeEvent } from './operation-events.js';
import { RollbackRecordSchema } from './records.js';
import { activateRollback, type RollbackRecord, undoUnconfirmedRollback } from './rollback.js';
import { currentGeneration, systemPath } from './system.js';
import { recordSystemLock } from './system-locks.js';

/** What a reconciliation did, for the command that triggered it to report. */
export interface Reconciled {
  operation: JournalRecord['operation'];
  step: string;
  outcome: Interruption['outcome'];
  status: string;
  summary: string;
}

/**
 * Bring the host back to a known state after a `system-upgrade` or `rollback` that died mid-way:
 * the running system, the profile's current generation and the live flake.lock agree again.
 * The journal's last step decides the direction:
 * - system-upgrade at `activate`: the switch may have run partly; the tested system was what the
 *   admin approved, so finish (lock installed, `switch-to-configuration` run again; it is
 *   idempotent). A failing activation is reported like any failed upgrade (hv rollback).
 * - system-upgrade before `activate` while the tested system still runs (its test activation):
 *   finish too; it is the least change for the VMs.
 * - system-upgrade before `activate` while the old system runs (a reboot ended the test
 *   activation): undo (profile back to the old generation, the unactivated one removed, the old
 *   lock back); the PASSED test stays valid and `hv system-upgrade` can simply be run again.
 * - rollback before the profile moved: nothing changed. After: finish (activate the target,
 *   restore its lock): a rollback is the way back to a known-good system.
 * The caller holds the operation lock.
 */
export async function reconcileJournal(ctx: CommandContext): Promise<Reconciled | null> {
  const { services } = ctx;
  const j = readJournal(services.paths);
  if (!j) return null;
  const by = actorLabel(ctx.actor);
  const log = services.opLog('system-upgrade');
  log.warn('interrupted operation found', { operation: j.operation, step: j.step, pid: j.pid });
  services.log('warn', 'reconciling an interrupted operation', {
    operation: j.operation,
    step: j.step,
    startedAt: j.startedAt,
    by: j.by,
  });
  const deps: ApplyDeps = {
    config: ctx.config,
    runner: services.runner,
    now: services.now,
    paths: services.paths,
    log,
    progress: ctx.progress,
  };
  const base = { step: j.step, reconciledAt: services.now().toISOString(), reconciledBy: by };
  let event: HvEvent;
  let result: Reconciled;
  if (j.operation === 'system-upgrade') {
    const rec = await reconcileUpgrade(deps, j, base);
    event = upgradeEvent(ctx.config, rec, services.now());
    result = reconciled(j, rec.interrupted as Interruption, rec.status);
    if (rec.status === 'applied') removeFiles(services.paths.updateText, services.paths.updateJson);
  } else {
    const rec = await reconcileRollback(deps, j, base);
    if (!rec) {
      result = {
        operation: j.operation,
        step: j.step,
        outcome: 'nothing-changed',
        status: 'failed',
        summary: `rollback (started ${j.startedAt} by ${j.by}) was interrupted before the profile moved: nothing changed; generation ${j.from.generation ?? '?'} still runs`,
      };
      event = rollbackEvent(
        ctx.config,
        {
          status: 'failed',
          at: base.reconciledAt,
          by: j.by,
          fromGeneration: j.from.generation,
          generation: j.to.generation as number,
          system: j.to.system as string,
          lockRestoredFrom: undefined,
          lockRestored: false,
          activationExit: -1,
          rebootRequired: false,
          rebootParts: [],
          testInvalidated: false,
          error: result.summary,
          interrupted: { ...base, outcome: 'nothing-changed', detail: result.summary },
        },
        services.now(),
      );
    } else {
      result = reconciled(j, rec.interrupted as Interruption, rec.status);
      event = rollbackEvent(ctx.config, rec, services.now());
    }
  }
  removeFiles(services.paths.journal, services.paths.journalFromLock, services.paths.journalToLock);
  // The window (if one was open) is settled with the journal: kept or reverted, and recorded.
  if (isWindowStep(j.step)) dropWindowOf(services.paths, j);
  log.info('interrupted operation reconciled', {
    operation: j.operation,
    step: j.step,
    outcome: result.outcome,
    status: result.status,
  });
  await services.audit.append({
    actor: ctx.actor,
    operation: j.operation,
    result: result.status,
    requestId: ctx.requestId,
    details: {
      interrupted: true,
      step: j.step,
      outcome: result.outcome,
      startedAt: j.startedAt,
      startedBy: j.by,
      summary: result.summary,
    },
  });
  try {
    const hub = await services.hub();
    if (result.status === 'applied') await hub.reconcile(null);
    await hub.publish([event]);
  } catch (e) {
    services.log('error', 'notification failed', { error: errorMessage(e) });
  }
  return result;
}

function reconciled(j: JournalRecord, i: Interruption, status: string): Reconciled {
  return {
    operation: j.operation,
    step: j.step,
    outcome: i.outcome,
    status,
    summary: `${j.operation} (started ${j.startedAt} by ${j.by}) was interrupted at "${j.step}": ${i.detail}`,
  };
}

async function reconcileUpgrade(
  deps: ApplyDeps,
  j: JournalRecord,
  base: Omit<Interruption, 'outcome' | 'detail'>,
): Promise<UpgradeRecord> {
  const { config, paths, log, now } = deps;
  const last = readLastUpgrade(paths);
  const rec: UpgradeRecord =
    last && last.toplevel === j.to.system && last.startedAt === j.startedAt
      ? last
      : {
          status: 'activating',
          startedAt: j.startedAt,
          finishedAt: undefined,
          by: j.by,
          operation: j.action,
          previousGeneration: j.from.generation,
          previousSystem: j.from.system,
          newGeneration: j.to.generation,
          toplevel: j.to.system as string,
          version: undefined,
          input: config.flake.input,
          oldRev: undefined,
          newRev: undefined,
          testStartedAt: j.startedAt,
          backupDir: j.backupDir ?? '',
          activationExit: undefined,
          rebootRequired: false,
          rebootParts: [],
        };

  if (isWindowStep(j.step)) return reconcileUnconfirmedUpgrade(deps, j, base, rec);

  const running = systemPath(config.paths.currentSystem);
  if (j.step !== 'activate' && running !== j.to.system) {
    // Nothing new runs (e.g. a reboot ended the test activation): undo the profile and lock.
    const done: string[] = [];
    const problems: string[] = [];
    const gen = currentGeneration(config.paths.profile);
    if (
      j.from.generation !== undefined &&
      gen !== j.from.generation &&
      systemPath(config.paths.profile) === j.to.system
    ) {
      const err = await setProfile(deps, ['--switch-generation', String(j.from.generation)]);
      if (err) problems.push(`could not switch the profile back to generation ${j.from.generation}: ${err}`);
      else {
        done.push(`profile back to generation ${j.from.generation}`);
        if (gen !== undefined) {
          const del = await setProfile(deps, ['--delete-generations', String(gen)]);
          if (!del) done.push(`unactivated generation ${gen} removed`);
        }
      }
    }
    const lock = restoreLock(deps, j.from);
    if (lock === 'restored') done.push(`${filesOf(j.from)} restored`);
    if (lock === 'missing')
      problems.push(
        `the previous ${filesOf(j.from)} (${[j.from.lockFile, j.from.flakeNixFile].filter(Boolean).join(', ') || '?'}) is missing`,
      );
    if (running !== j.from.system)
      problems.push(
        `the running system ${running ?? '?'} is not the one the upgrade started from (${j.from.system ?? '?'})`,
      );
    const detail = `${done.length ? `undone: ${done.join(', ')}` : 'nothing had changed yet'}; generation ${j.from.generation ?? '?'} runs with its ${filesOf(j.from)}${problems.length ? `. Problems: ${problems.join('; ')}` : ''}. The upgrade was not applied; run "${HV} system-upgrade" again.`;
    rec.status = 'failed';
    rec.newGeneration = undefined;
    rec.error = `interrupted at "${j.step}"; ${detail}`;
    rec.finishedAt = now().toISOString();
    rec.interrupted = { ...base, outcome: done.length ? 'undone' : 'nothing-changed', detail };
    writeJsonAtomic(paths.lastUpgrade, rec, 0o600);
    log.info('interrupted system upgrade undone', {
      actions: done.join(', '),
      problems: problems.join('; '),
    });
    return rec;
  }

  // The switch began, or the tested system already runs (its test activation is still live):
  // finish. The profile and lock steps are done (re-done if missing); switching to a system that
  // already runs changes nothing for the VMs.
  const done: string[] = [];
  if (systemPath(config.paths.profile) !== j.to.system) {
    const err = await setProfile(deps, ['--set', j.to.system as string]);
    if (!err) done.push('profile set to the tested system');
  }
  rec.newGeneration = currentGeneration(config.paths.profile);
  if (restoreLock(deps, j.to) === 'restored') done.push(`tested ${filesOf(j.to)} installed`);
  if (j.to.system && j.to.lockFile && existsSync(j.to.lockFile))
    recordSystemLock(deps.paths, j.to.system, readFileSync(j.to.lockFile, 'utf8'));
  await activateUpgrade(deps, rec);
  done.push(
    `switch-to-configuration ${rec.operation} run again (${rec.status === 'applied' ? 'ok' : 'failed'})`,
  );
  const detail =
    rec.status === 'applied'
      ? `finished: ${done.join(', ')}; generation ${rec.newGeneration} is active with the tested ${filesOf(j.to)}`
      : `finished the steps (${done.join(', ')}) but the activation failed; generation ${rec.newGeneration} is the profile's; return with "${HV} rollback"`;
  rec.interrupted = { ...base, outcome: 'finished', detail };
  writeJsonAtomic(paths.lastUpgrade, rec, 0o600);
  return rec;
}

async function reconcileRollback(
  deps: ApplyDeps,
  j: JournalRecord,
  base: Omit<Interruption, 'outcome' | 'detail'>,
) {
  const { config } = deps;
  if (isWindowStep(j.step)) return reconcileUnconfirmedRollback(deps, j, base);
  const gen = currentGeneration(config.paths.profile);
  if (j.step === 'switch-profile' && gen !== j.to.generation) {
    // The profile never moved: the lock was not touched either, and nothing was activated.
    restoreLock(deps, j.from);
    return null;
  }
  if (gen !== j.to.generation) await setProfile(deps, ['--switch-generation', String(j.to.generation)]);
  const interrupted: Interruption = { ...base, outcome: 'finished', detail: '' };
  const rec = await activateRollback(deps, j, () => {}, interrupted);
  interrupted.detail =
    rec.status === 'rolled-back'
      ? `finished: generation ${rec.generation} is active${rec.lockRestored ? ' with its flake.lock' : ' (no backed-up flake.lock for it)'}`
      : `finished the profile switch to generation ${rec.generation}, but its activation failed: ${lastLines(rec.error ?? '', 3)}`;
  writeJsonAtomic(deps.paths.lastRollback, rec, 0o600);
  return rec;
}

const isWindowStep = (step: string) => (WINDOW_STEPS as readonly string[]).includes(step);

function dropWindowOf(paths: ApplyDeps['paths'], j: JournalRecord): void {
  const v = windowVerdict(paths, j.operation, j.to.system);
  if (v.window) closeWindow(paths, v.window);
}

/**
 * A system-upgrade that died inside its confirmation window (steps `confirm`, `revert`; the engine
 * was killed or the host rebooted, into either generation): confirmed in time, it is kept;
 * otherwise it is undone as the waiting engine would have (apply.ts undoUnconfirmedUpgrade).
 */
async function reconcileUnconfirmedUpgrade(
  deps: ApplyDeps,
  j: JournalRecord,
  base: Omit<Interruption, 'outcome' | 'detail'>,
  rec: UpgradeRecord,
): Promise<UpgradeRecord> {
  return settleWindow(deps, j, base, rec, deps.paths.lastUpgrade, rec.newGeneration, (reason) =>
    undoUnconfirmedUpgrade(deps, j, rec, reason),
  );
}

/**
 * The shared end of both: a window confirmed before the engine stopped keeps its activation;
 * otherwise `undo` switches back. Either way the record (in `file`) says what reconciliation did.
 */
async function settleWindow<
  R extends { confirmedBy?: string; interrupted?: Interruption; notConfirmed?: { detail: string } },
>(
  deps: ApplyDeps,
  j: JournalRecord,
  base: Omit<Interruption, 'outcome' | 'detail'>,
  rec: R,
  file: string,
  generation: number | undefined,
  undo: (reason: string) => Promise<unknown>,
): Promise<R> {
  const v = windowVerdict(deps.paths, j.operation, j.to.system);
  if (j.step === 'confirm' && v.confirmed) {
    rec.confirmedBy = v.confirmed;
    rec.interrupted = {
      ...base,
      outcome: 'finished',
      detail: `the activation was ${v.confirmed} before the engine stopped; generation ${generation ?? '?'} stays`,
    };
  } else {
    const reason = j.notConfirmed ?? v.reason;
    await undo(reason);
    rec.interrupted = {
      ...base,
      outcome: 'undone',
      detail: `${reason}; reverted: ${rec.notConfirmed?.detail ?? '?'}`,
    };
  }
  writeJsonAtomic(file, rec, 0o600);
  return rec;
}

/** A rollback that died inside its confirmation window: kept if confirmed in time, else undone. */
async function reconcileUnconfirmedRollback(
  deps: ApplyDeps,
  j: JournalRecord,
  base: Omit<Interruption, 'outcome' | 'detail'>,
): Promise<RollbackRecord> {
  const { paths } = deps;
  const last = readRecord<RollbackRecord>(
    paths.lastRollback,
    RollbackRecordSchema,
    'the last rollback record',
  );
  const rec: RollbackRecord =
    last && last.generation === j.to.generation && last.system === j.to.system
      ? last
      : {
          status: 'rolled-back',
          at: j.startedAt,
          by: j.by,
          fromGeneration: j.from.generation,
          generation: j.to.generation as number,
          system: j.to.system as string,
          lockRestoredFrom: undefined,
          lockRestored: false,
          activationExit: 0,
          rebootRequired: false,
          rebootParts: [],
          testInvalidated: false,
        };
  return settleWindow(deps, j, base, rec, paths.lastRollback, rec.generation, (reason) =>
    undoUnconfirmedRollback(deps, j, rec, reason),
  );
}
