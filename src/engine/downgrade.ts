import { HvError } from '../errors.js';
import type { OpLog } from '../log.js';
import type { TestResult } from './test-result.js';

/**
 * Refuse a downgrade (HvError 'refused', exit 3) unless `--allow-downgrade` was given, in which case
 * the result records that it was allowed.
 */
export function guardDowngrade(
  reasons: string[],
  opts: { allowDowngrade: boolean },
  r: TestResult,
  log: OpLog,
): void {
  if (!reasons.length) return;
  if (opts.allowDowngrade) {
    r.downgradeAllowed = true;
    log.warn('downgrade allowed', { reasons });
    return;
  }
  log.error('downgrade refused', { reasons });
  throw new HvError(
    'refused',
    `refused (downgrade guard): ${reasons.join('; ')}. Nothing was activated. If you really mean to go back, run "hv upgrade-test --allow-downgrade".`,
    { gate: 'downgrade', reasons },
  );
}
