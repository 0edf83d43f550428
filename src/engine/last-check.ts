import { readRecord, type StatePaths } from '../state.js';
import type { CheckResult } from './check.js';
import { CheckResultSchema, LastCheckRecordSchema } from './records.js';

/** `<state>/last-check.json`, written by `check-updates` after every run. */
export interface LastCheck {
  at: string;
  ok: boolean;
  error?: string;
  /** On a failed check: when the last one succeeded (carried over from the previous record). */
  lastSuccessAt?: string;
  /** On a successful check: what it found. */
  result?: CheckResult;
}

/** The last check, or null if none ran. A damaged file is HvError('state-corrupt') naming it. */
export function readLastCheck(paths: Pick<StatePaths, 'lastCheck'>): LastCheck | null {
  return readRecord<LastCheck>(paths.lastCheck, LastCheckRecordSchema, 'the last check record');
}

/** When the last check succeeded, according to a last-check record. */
export function lastSuccessOf(last: LastCheck | null): string | undefined {
  return last?.ok ? last.at : last?.lastSuccessAt;
}

/** The pending update (`update-available.json`), or null. A damaged file is HvError('state-corrupt'). */
export function readPendingUpdate(paths: Pick<StatePaths, 'updateJson'>): CheckResult | null {
  return readRecord<CheckResult>(paths.updateJson, CheckResultSchema, 'the pending update record');
}
