import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import type { OperationDeps } from './check.js';
import { sha256 } from './flake-lock.js';
import { lastLines } from './nix.js';
import type { JournalRecord } from './op-journal.js';

/**
 * Steps that put one side of a journalled operation back (shared by the reconciler of interrupted
 * operations and the dead-man revert): the profile generation, the live flake.lock and flake.nix.
 */

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** `nix-env -p <profile> <argv>`; undefined when it worked, else what went wrong. */
export async function setProfile(deps: OperationDeps, argv: string[]): Promise<string | undefined> {
  const r = await deps.runner.run([deps.config.tools.nixEnv, '-p', deps.config.paths.profile, ...argv], {
    timeoutMs: 10 * 60_000,
    onLine: (l) => deps.log.output(l),
  });
  return r.exitCode === 0 ? undefined : lastLines(r.spawnError ?? r.stderr, 5) || `exit ${r.exitCode}`;
}

/**
 * Make the live flake.lock (and, for a release upgrade, flake.nix) the one of `side`. flake.nix is
 * handled on its own: an operation killed between the two writes left one of them on each side.
 */
export function restoreLock(
  deps: OperationDeps,
  side: JournalRecord['from'],
): 'restored' | 'already' | 'missing' {
  const nix = restoreFlakeNix(deps, side);
  const lockPath = join(deps.config.flake.dir, 'flake.lock');
  const live = readOrNull(lockPath);
  if (live !== null && sha256(live) === side.lockSha256) return nix;
  if (!side.lockFile || !existsSync(side.lockFile)) return 'missing';
  writeFileAtomic(lockPath, readFileSync(side.lockFile));
  return 'restored';
}

function restoreFlakeNix(
  deps: OperationDeps,
  side: JournalRecord['from'],
): 'restored' | 'already' | 'missing' {
  if (!side.flakeNixFile) return 'already';
  if (!existsSync(side.flakeNixFile)) return 'missing';
  const path = join(deps.config.flake.dir, 'flake.nix');
  const want = readFileSync(side.flakeNixFile);
  const live = readOrNull(path);
  if (live !== null && Buffer.from(live).equals(want)) return 'already';
  writeFileAtomic(path, want);
  deps.log.info('flake.nix restored', { from: side.flakeNixFile });
  return 'restored';
}

/** "flake.lock" or "flake.lock and flake.nix", for what the reconciler says it did. */
export const filesOf = (side: JournalRecord['from']) =>
  side.flakeNixFile ? 'flake.lock and flake.nix' : 'flake.lock';
