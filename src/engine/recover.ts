import { existsSync } from 'node:fs';
import { actorLabel } from '../audit.js';
import { isHvError } from '../errors.js';
import { acquireLock } from '../lock.js';
import type { CommandContext } from '../ports/command.js';
import { dropStaleWindow } from './confirm-recovery.js';
import { windowFile } from './confirm-window.js';
import { type Reconciled, reconcileJournal } from './reconcile.js';
import { recoverInterruptedTest } from './recovery.js';

/**
 * Finish whatever an earlier hv left unfinished, before any command runs (SPEC: an interrupted
 * test is reverted and recorded failed; an interrupted system-upgrade or rollback is reconciled).
 * Returns one line per thing it did, for the command to report. Leaves everything alone while a
 * live operation holds the lock: that operation is not interrupted, it is running.
 */
export async function recoverInterrupted(ctx: CommandContext): Promise<string[]> {
  const { paths } = ctx.services;
  const notes: string[] = [];
  if (existsSync(paths.journal)) {
    const by = actorLabel(ctx.actor);
    let lock: ReturnType<typeof acquireLock> | undefined;
    try {
      lock = acquireLock(paths.dir, 'reconcile an interrupted operation', by);
    } catch (e) {
      if (!(isHvError(e) && e.code === 'busy')) throw e;
    }
    if (lock) {
      let r: Reconciled | null;
      try {
        r = await reconcileJournal(ctx);
      } finally {
        lock.release();
      }
      if (r) notes.push(`Recovered: ${r.summary}`);
    }
  }
  if (existsSync(paths.testInProgress)) {
    const t = await recoverInterruptedTest(ctx);
    if (t)
      notes.push(
        `Recovered: an upgrade test (started ${t.startedAt}) was interrupted${t.failureKind === 'not-confirmed' ? ` inside its confirmation window (${t.reason})` : ''}; recorded FAILED${t.reverted ? ', the previous system is active again' : ''}`,
      );
  }
  // A window whose operation recorded its outcome, then died before removing it.
  if (existsSync(windowFile(paths)) && dropStaleWindow(paths, actorLabel(ctx.actor)))
    ctx.services.log('info', 'removed a stale confirmation window', {});
  return notes;
}
