import { isHvError } from '../errors.js';
import { acquireLock } from '../lock.js';
import { isRunning } from '../process-identity.js';
import type { StatePaths } from '../state.js';
import {
  type ConfirmWindow,
  closeWindow,
  confirmedBy,
  missingEvidence,
  readEvidence,
  readWindow,
} from './confirm-window.js';

/** What recovery makes of the window an operation that died left behind. */
export interface WindowVerdict {
  /** The window, if it was opened (and is this operation's). */
  window: ConfirmWindow | null;
  /** Evidence confirmed it before the engine stopped: the activation stays. */
  confirmed?: string;
  /** Otherwise: why it is reverted, for records and notifications. */
  reason: string;
}

function readWindowOrNull(paths: StatePaths): ConfirmWindow | null {
  try {
    return readWindow(paths);
  } catch (e) {
    // A damaged window confirms nothing; the journal or marker still says what to undo.
    if (isHvError(e) && e.code === 'state-corrupt') return null;
    throw e;
  }
}

/**
 * The verdict on the window of an operation whose process is gone (killed, crashed, rebooted):
 * confirmed if the evidence recorded in time says so, else reverted, with the reason
 * "the engine stopped inside the confirmation window". The evidence counts only until the deadline:
 * a Keep pressed after it confirms nothing.
 */
export function windowVerdict(
  paths: StatePaths,
  operation: ConfirmWindow['operation'],
  activated: string | undefined,
): WindowVerdict {
  const found = readWindowOrNull(paths);
  const w = found && found.operation === operation && found.activated === activated ? found : null;
  if (!w)
    return {
      window: null,
      reason: 'not confirmed: the engine stopped after the activation, before the confirmation window opened',
    };
  const deadline = Date.parse(w.deadline);
  const evidence = readEvidence(paths, w).filter((e) => Date.parse(e.at) <= deadline);
  const by = confirmedBy(w, evidence);
  if (by) return { window: w, confirmed: by, reason: '' };
  return {
    window: w,
    reason: `not confirmed: the engine (pid ${w.pid}) stopped inside the confirmation window (open until ${w.deadline}); ${missingEvidence(w, evidence)}`,
  };
}

/**
 * A window left behind with nothing to undo (its operation recorded the outcome, then died before
 * removing it): removed, under the operation lock so that a window a new operation just opened is
 * never taken for it. A window whose owner still runs is that operation's.
 */
export function dropStaleWindow(paths: StatePaths, by: string): boolean {
  const w = readWindowOrNull(paths);
  if (w && isRunning(w)) return false;
  let lock: ReturnType<typeof acquireLock>;
  try {
    lock = acquireLock(paths.dir, 'remove a stale confirmation window', by);
  } catch (e) {
    if (isHvError(e) && e.code === 'busy') return false;
    throw e;
  }
  try {
    const again = readWindowOrNull(paths);
    if (again && isRunning(again)) return false;
    closeWindow(paths, again ?? w ?? { id: '' });
    return true;
  } finally {
    lock.release();
  }
}
