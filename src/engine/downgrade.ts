import { HV } from '../cli-name.js';
import { HvError } from '../errors.js';
import type { OpLog } from '../log.js';
import { releaseName, releaseOfVersion } from './releases.js';
import { versionOf } from './system.js';

/**
 * What a downgrade goes from and to, recorded in a PASSED result that `--allow-downgrade` let
 * through, so that `system-upgrade` (its output, prompts, notifications, audit) can say so.
 */
export interface Downgrade {
  /** NixOS version of the system the test started from (`nixos-version`, else the store name). */
  fromVersion: string | undefined;
  /** NixOS version of the tested system (undefined until it is built). */
  toVersion: string | undefined;
  fromRev: string | undefined;
  toRev: string | undefined;
  fromRelease?: string;
  toRelease?: string;
  /** Why it is a downgrade (older revision, lower release), as the guard said. */
  reasons: string[];
}

/**
 * The facts of a test result that the downgrade rules read and write (a TestResult has them; named
 * here, not imported, because test-result.ts uses this module).
 */
export interface DowngradeFacts {
  previousSystem: string | undefined;
  version: string | undefined;
  oldRev: string | undefined;
  newRev: string | undefined;
  downgradeAllowed: boolean;
  downgrade?: Downgrade;
}

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

/** (Re)compute `r.downgrade` from the result's facts, keeping the reasons already recorded. */
export function markDowngrade(r: DowngradeFacts, reasons: string[] = []): void {
  const fromVersion = versionOf(r.previousSystem);
  const from = releaseOfVersion(fromVersion);
  const to = releaseOfVersion(r.version);
  r.downgrade = {
    fromVersion,
    toVersion: r.version,
    fromRev: r.oldRev,
    toRev: r.newRev,
    ...(from ? { fromRelease: releaseName(from) } : {}),
    ...(to ? { toRelease: releaseName(to) } : {}),
    reasons: [...(r.downgrade?.reasons ?? []), ...reasons],
  };
}

/**
 * The downgrade a result carries; for a result written before `downgrade` was recorded (only
 * `downgradeAllowed`), what can be told from its other facts.
 */
export function downgradeOf(r: DowngradeFacts): Downgrade | undefined {
  if (r.downgrade) return r.downgrade;
  if (!r.downgradeAllowed) return undefined;
  const copy = { ...r, downgrade: undefined };
  markDowngrade(copy);
  return copy.downgrade;
}

/**
 * One line for people: `DOWNGRADE: 24.11.3 → 24.05.9 (nixpkgs 0123456789ab → ba9876543210)`.
 * Every prompt, summary and notification of a downgrade starts with it.
 */
export function downgradeLine(d: Downgrade, input: string): string {
  return `DOWNGRADE: ${d.fromVersion ?? '?'} → ${d.toVersion ?? '?'} (${input} ${short(d.fromRev)} → ${short(d.toRev)})`;
}

/**
 * Refuse a downgrade (HvError 'refused', exit 3) unless `--allow-downgrade` was given, in which case
 * the result records that it was allowed and what it goes from and to.
 */
export function guardDowngrade(
  reasons: string[],
  opts: { allowDowngrade: boolean },
  r: DowngradeFacts,
  log: OpLog,
): void {
  if (!reasons.length) return;
  if (opts.allowDowngrade) {
    r.downgradeAllowed = true;
    markDowngrade(r, reasons);
    log.warn('downgrade allowed', { reasons });
    return;
  }
  refuseDowngrade(reasons, log);
}

/** The downgrade guard's refusal (exit 3), for a caller that knows it before any result exists. */
export function refuseDowngrade(reasons: string[], log: OpLog): never {
  log.error('downgrade refused', { reasons });
  throw new HvError(
    'refused',
    `refused (downgrade guard): ${reasons.join('; ')}. Nothing was activated. If you really mean to go back, run "${HV} upgrade-test --allow-downgrade" (from chat it needs the admin role).`,
    { gate: 'downgrade', reasons },
  );
}
