import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Runner } from '../proc.js';
import type { StatePaths } from '../state.js';
import { readLastUpgrade } from './apply.js';
import { findLockForSystem } from './backup.js';
import { changesLine } from './changes-text.js';
import { systemDiff } from './closure.js';
import { downgradeLine, downgradeOf } from './downgrade.js';
import { type FlakeLock, lockedInput, sha256 } from './flake-lock.js';
import { flakeNixToRestore, lockForRollbackTarget } from './rollback.js';
import { currentGeneration, listGenerations, systemPath, versionOf } from './system.js';
import { readTestResult } from './test-result.js';

/**
 * What `system-upgrade` and `rollback` would change, in words for a confirmation prompt (terminal
 * and chat). Read-only and best effort: the commands' own gates decide; a preview only says when
 * they will refuse. A DOWNGRADE comes first, so that no cut for a chat limit can hide it.
 */

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The locked revision of `input` in a flake.lock file, if it can be read. */
function revOfLockFile(file: string, input: string): string | undefined {
  try {
    const text = readFileSync(file, 'utf8');
    const lock: FlakeLock = { text, sha256: sha256(text), json: JSON.parse(text) };
    return lockedInput(lock, input).locked.rev;
  } catch {
    return undefined;
  }
}

/** `system-upgrade`: from the PASSED test result and the profile's current generation. */
export function upgradePreview(config: Config, paths: StatePaths): string {
  const r = readTestResult(paths);
  if (!r)
    return `There is no upgrade test result (${paths.testJson}): system-upgrade will refuse; run "${HV} upgrade-test" first.`;
  if (r.status !== 'passed' || !r.toplevel)
    return `The last upgrade test FAILED (${r.finishedAt}): system-upgrade will refuse; see ${paths.testText}.`;
  const profile = config.paths.profile;
  const gen = currentGeneration(profile);
  // nix-env --set makes a new generation unless the newest one already holds that system.
  const newest = listGenerations(profile).at(-1);
  const target =
    newest && newest.path === r.toplevel
      ? `generation ${newest.number} (it holds this system already)`
      : `new generation ${(newest?.number ?? 0) + 1}`;
  const fromVersion = versionOf(systemPath(profile));
  const downgrade = downgradeOf(r);
  const lines: string[] = [];
  if (downgrade) lines.push(`${downgradeLine(downgrade, r.input)}.`);
  // What the tested system changes, right after any DOWNGRADE: no cut for a chat limit hides it.
  const changes = changesLine(r, config.test.watch, PREVIEW_CHANGES);
  if (changes) lines.push(changes);
  lines.push(
    `Will change: generation ${gen ?? '?'} → ${target}; ${fromVersion ?? '?'} → ${r.version ?? '?'}; ${r.input} ${short(r.oldRev)} → ${short(r.newRev)}.`,
    `Tested system: ${r.toplevel} (PASSED ${r.finishedAt}); ${config.apply.operation === 'boot' ? 'active from the next boot' : 'active at once (switch)'}.`,
  );
  if (r.release)
    lines.push(
      `Release upgrade ${r.release.from} → ${r.release.to}: installs the tested flake.nix (${r.input} follows ${r.release.toRef}) and flake.lock.`,
    );
  if (downgrade) lines.push(...downgrade.reasons.map((why) => `Why it is a downgrade: ${why}.`));
  if (gen !== r.previousGeneration)
    lines.push(
      `The test started from generation ${r.previousGeneration ?? '?'}, the profile is at ${gen ?? '?'}: system-upgrade will refuse; run "${HV} upgrade-test" again.`,
    );
  return lines.join('\n');
}

/** A prompt's `Changes:` line at most this long (with the rest it fits the bus's preview limit). */
const PREVIEW_CHANGES = 600;

/** `Changes: …` from the running system to `target`, or `Changes: unknown (<why>)`. */
async function rollbackChanges(config: Config, runner: Runner, target: string): Promise<string> {
  const running = systemPath(config.paths.currentSystem);
  if (!running) return `Changes: unknown (no running system at ${config.paths.currentSystem})`;
  try {
    const changes = await systemDiff(runner, config, running, target);
    return changesLine({ changes }, config.test.watch, PREVIEW_CHANGES) as string;
  } catch (e) {
    return changesLine({ changesError: errorMessage(e) }, config.test.watch) as string;
  }
}

/**
 * `rollback [--to N]`: the current generation → the target (from `--to` or last-upgrade.json), and
 * what that changes from the running system (best effort: a failing store query says so).
 */
export async function rollbackPreview(
  config: Config,
  paths: StatePaths,
  runner: Runner,
  to: number | undefined,
): Promise<string> {
  // Read through its schema: a damaged record is named (the caller says so), never read as "nothing".
  const last = readLastUpgrade(paths);
  const profile = config.paths.profile;
  const generations = listGenerations(profile);
  const target = to ?? last?.previousGeneration;
  if (target === undefined)
    return `Nothing is recorded to roll back to (${paths.lastUpgrade}): rollback will refuse; name a generation with --to N (${generations.map((g) => g.number).join(', ') || 'none'}).`;
  const gen = generations.find((g) => g.number === target);
  if (!gen?.path)
    return `Generation ${target} of ${profile} does not exist: rollback will refuse; generations are: ${generations.map((g) => g.number).join(', ') || 'none'}.`;
  const input = config.flake.input;
  // The revision a generation was built from: its backed-up lock, else what the last upgrade recorded.
  const revOf = (n: number | undefined, system: string | undefined): string | undefined => {
    const saved = system ? findLockForSystem(paths.backups, system) : undefined;
    const fromBackup = saved ? revOfLockFile(saved.file, input) : undefined;
    if (fromBackup) return fromBackup;
    if (last && n !== undefined && n === last.newGeneration) return last.newRev;
    if (last && n !== undefined && n === last.previousGeneration) return last.oldRev;
    return undefined;
  };
  const describe = (n: number | undefined, system: string | undefined) => {
    const rev = revOf(n, system);
    return `generation ${n ?? '?'} (${versionOf(system) ?? '?'}${rev ? `, ${input} ${short(rev)}` : ''})`;
  };
  const current = currentGeneration(profile);
  const currentSystem = systemPath(profile);
  const lines = [`Will change: ${describe(current, currentSystem)} → ${describe(target, gen.path)}.`];
  lines.push(await rollbackChanges(config, runner, gen.path));
  if (target === current) lines.push(`Generation ${target} is already the current one: it is re-activated.`);
  // The same choice the rollback makes (lockForRollbackTarget), so the prompt tells the truth.
  const saved = lockForRollbackTarget(paths, last, target, gen.path);
  lines.push(
    saved
      ? `flake.lock: restored from ${saved.from}.`
      : 'flake.lock: left as it is (hv knows no lock of that generation).',
  );
  const liveLock = readOrNull(join(config.flake.dir, 'flake.lock'));
  const nix = saved ? flakeNixToRestore(config.flake.dir, input, liveLock, saved) : undefined;
  if (nix) lines.push(`flake.nix: restored from ${nix} (the rollback undoes a release upgrade).`);
  return lines.join('\n');
}
