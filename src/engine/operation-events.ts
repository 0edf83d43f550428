import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import type { HvEvent } from '../events.js';
import { makeEvent } from '../notify/events.js';
import type { UpgradeRecord } from './apply.js';
import { changesLine, fitSummary } from './changes-text.js';
import { diffLines } from './closure-diff-text.js';
import type { RollbackRecord } from './rollback.js';

function interruptedNote(i: UpgradeRecord['interrupted']): string {
  return i ? ` (interrupted at "${i.step}"; ${i.outcome} by ${i.reconciledBy})` : '';
}

/** The `upgrade.applied` / `upgrade.failed` event of a system-upgrade (finished or reconciled). */
export function upgradeEvent(config: Config, rec: UpgradeRecord, now: Date): HvEvent {
  const applied = rec.status === 'applied';
  const note = interruptedNote(rec.interrupted);
  const watch = config.test.watch;
  // The short form in the title (subjects, chat), the full list for the email body.
  const short = applied ? changesLine(rec, watch, 300) : undefined;
  const { changes: diff, ...facts } = rec;
  return makeEvent(
    applied ? 'upgrade.applied' : 'upgrade.failed',
    {
      host: config.host,
      key: `${rec.toplevel}@${rec.startedAt}`,
      title: applied
        ? `System upgrade applied on ${config.host}: ${rec.downgradeLine ?? rec.version ?? rec.toplevel} (generation ${rec.previousGeneration ?? '?'} → ${rec.newGeneration})${rec.rebootRequired ? '; reboot required' : ''}${rec.confirmedBy ? `; ${rec.confirmedBy}` : ''}${note}${short ? ` — ${short}` : ''}`
        : rec.notConfirmed
          ? `System upgrade on ${config.host} was reverted: ${rec.notConfirmed.reason}; generation ${rec.previousGeneration ?? '?'} runs again${rec.notConfirmed.ok ? ' with its flake.lock' : ` (revert incomplete: ${rec.notConfirmed.detail})`}`
          : rec.interrupted && rec.interrupted.outcome !== 'finished'
            ? `System upgrade on ${config.host} was interrupted and undone: generation ${rec.previousGeneration ?? '?'} runs with its flake.lock${note}`
            : `System upgrade FAILED on ${config.host} activating generation ${rec.newGeneration}${rec.downgradeLine ? ` (${rec.downgradeLine})` : ''}${note}`,
      // The downgrade as one line, so that every channel's list of facts shows it.
      data: {
        ...facts,
        downgrade: rec.downgradeLine,
        ...(diff
          ? { changes: fitSummary(diff, watch, 1000), changesList: diffLines(diff, watch).join('\n') }
          : {}),
      },
      next: applied
        ? rec.rebootRequired
          ? 'reboot'
          : undefined
        : rec.notConfirmed
          ? `${HV} upgrade-test`
          : rec.interrupted && rec.interrupted.outcome !== 'finished'
            ? `${HV} system-upgrade`
            : `${HV} rollback`,
    },
    now,
  );
}

/** The `rollback.done` event (or `upgrade.failed` when the rollback did not activate cleanly). */
export function rollbackEvent(config: Config, rec: RollbackRecord, now: Date): HvEvent {
  const done = rec.status === 'rolled-back';
  const note = interruptedNote(rec.interrupted);
  return makeEvent(
    done ? 'rollback.done' : 'upgrade.failed',
    {
      host: config.host,
      key: `rollback:${rec.generation}@${rec.at}`,
      title: done
        ? `Rolled back on ${config.host} to generation ${rec.generation}${rec.confirmedBy ? `; ${rec.confirmedBy}` : ''}${note}`
        : rec.notConfirmed
          ? `Rollback on ${config.host} to generation ${rec.generation} was reverted: ${rec.notConfirmed.reason}; generation ${rec.fromGeneration ?? '?'} runs again${rec.notConfirmed.ok ? '' : ` (revert incomplete: ${rec.notConfirmed.detail})`}`
          : `Rollback on ${config.host} to generation ${rec.generation} failed to activate cleanly${note}`,
      data: { ...rec },
    },
    now,
  );
}
