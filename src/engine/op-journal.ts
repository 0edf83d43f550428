import { existsSync } from 'node:fs';
import { HV } from '../cli-name.js';
import { HvError } from '../errors.js';
import { writeJsonAtomic } from '../fs/atomic.js';
import type { StatePaths } from '../state.js';
import { readRecord, removeFiles } from '../state.js';
import { JournalRecordSchema } from './records.js';

/**
 * The steps after the activation when `apply.confirm` opens a window (confirm-window.ts): `confirm`
 * while it waits for evidence, `revert` once the deadline passed and the `from` side is put back.
 */
export const WINDOW_STEPS = ['confirm', 'revert'] as const;

/**
 * The steps of `system-upgrade`, in order. The tested lock is installed only once the profile
 * points at the new generation, so that at every step the host is either still entirely on the
 * old system (undo is trivial) or committed to the new one (finish is the way forward).
 */
export const UPGRADE_STEPS = ['backup', 'set-profile', 'install-lock', 'activate', ...WINDOW_STEPS] as const;
/** The steps of `rollback`, in order. */
export const ROLLBACK_STEPS = ['switch-profile', 'activate', 'restore-lock', ...WINDOW_STEPS] as const;

export type UpgradeStep = (typeof UPGRADE_STEPS)[number];
export type RollbackStep = (typeof ROLLBACK_STEPS)[number];

/** One side of an operation: a profile generation, its system and its flake.lock. */
export interface JournalSide {
  generation: number | undefined;
  system: string | undefined;
  /** sha256 of the flake.lock that belongs to this side. */
  lockSha256: string | undefined;
  /** A file holding that lock (a backup), so either side can be restored. */
  lockFile: string | undefined;
  /** Where that lock came from, for people (hv's record, a backup). */
  lockSource?: string;
  /** flake.nix of this side when it changes too (release upgrades). */
  flakeNixFile?: string;
}

/**
 * `<state>/operation-journal.json`: the intent of a `system-upgrade` or `rollback`, written before
 * anything changes and advanced before each step. A record found by a later hv command belongs to
 * an operation that never finished (killed, crashed, power loss): the reconciler brings the host to
 * a known state from the last step it recorded.
 */
export interface JournalRecord {
  operation: 'system-upgrade' | 'rollback';
  pid: number;
  startedAt: string;
  by: string;
  requestId?: string;
  /** `switch` or `boot` (system-upgrade); rollback always switches. */
  action: 'switch' | 'boot';
  step: UpgradeStep | RollbackStep;
  /** Every step with the time it began. */
  history: { step: string; at: string }[];
  from: JournalSide;
  to: JournalSide;
  /** The backup made before the operation (system-upgrade). */
  backupDir?: string;
  /** Step `revert`: why the activation is being undone (`not confirmed within N s: …`). */
  notConfirmed?: string;
}

/** Writes the journal of one running operation. */
export class OperationJournal {
  private constructor(
    private readonly paths: StatePaths,
    readonly record: JournalRecord,
    private readonly now: () => Date,
  ) {}

  /** Record the intent. Refuses when an unfinished record exists: it must be reconciled first. */
  static begin(
    paths: StatePaths,
    rec: Omit<JournalRecord, 'history' | 'pid'>,
    now: () => Date,
  ): OperationJournal {
    const file = paths.journal;
    if (existsSync(file))
      throw new HvError(
        'refused',
        `refused (gate "no unfinished operation"): an interrupted operation is recorded in ${file} and could not be reconciled; run "${HV} status" to see why, fix it, then try again`,
        { gate: 'no unfinished operation' },
      );
    const record: JournalRecord = {
      ...rec,
      pid: process.pid,
      history: [{ step: rec.step, at: now().toISOString() }],
    };
    writeJsonAtomic(file, record, 0o600);
    crashPoint(`${rec.operation}:${rec.step}`);
    return new OperationJournal(paths, record, now);
  }

  /** Record that `step` begins (before doing it), with facts learnt so far. */
  step(
    step: JournalRecord['step'],
    update: Partial<Pick<JournalRecord, 'to' | 'from' | 'notConfirmed'>> = {},
  ): void {
    Object.assign(this.record, update, { step });
    this.record.history.push({ step, at: this.now().toISOString() });
    writeJsonAtomic(this.paths.journal, this.record, 0o600);
    crashPoint(`${this.record.operation}:${step}`);
  }

  /** The operation reached a known end (done, failed cleanly, or refused before any change). */
  close(): void {
    crashPoint(`${this.record.operation}:close`);
    // The lock copies the journal named go with it.
    removeFiles(this.paths.journal, this.paths.journalFromLock, this.paths.journalToLock);
  }
}

/**
 * Fault injection for crash tests (like FreeBSD's fail points): `HV_TEST_CRASH_AT=<operation>:<step>`
 * makes this process SIGKILL itself right after the journal recorded that step, before doing it
 * (`:close` after the last step). Nothing happens without the variable.
 */
function crashPoint(name: string): void {
  if (process.env.HV_TEST_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}

export function readJournal(paths: StatePaths): JournalRecord | null {
  return readRecord<JournalRecord>(paths.journal, JournalRecordSchema, 'the operation journal');
}
