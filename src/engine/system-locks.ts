import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { writeJsonAtomic } from '../fs/atomic.js';
import type { Runner } from '../proc.js';
import { readRecord, type StatePaths, type Stored } from '../state.js';
import { findLockForSystem, listBackups, readBackup } from './backup.js';
import {
  type FlakeLock,
  type LockedInput,
  lockedDifferences,
  lockedInput,
  parseFlakeLock,
  readFlakeLock,
  sha256,
} from './flake-lock.js';
import { lastLines } from './nix.js';
import { SystemLockRecordSchema } from './records.js';
import { inputsHash } from './staging.js';
import { systemPath } from './system.js';

/** `<state>/system-locks/<store path basename>.json`: the lock a system was built from. */
export interface SystemLockRecord {
  system: string;
  lockSha256: string;
  lock: string;
  flakeNix?: string;
  recordedAt: string;
}

/** What hv can know about the flake.lock that produced a system, compared with the live one. */
export interface SystemLock {
  /**
   * `hv`: hv recorded it when it created the generation; `backup`: a backup made while it ran;
   * `nixos-version`: the running system's nixpkgs revision; `evaluation`: the live flake was
   * evaluated (not built) and compared; `unknown`: hv cannot tell.
   */
  source: 'hv' | 'backup' | 'nixos-version' | 'evaluation' | 'unknown';
  /** The lock itself, when known. */
  lockText?: string;
  /** The tracked input's locked revision in that lock (or the nixpkgs revision nixos-version reports). */
  rev?: string;
  /** Whether the live flake.lock pins what that system was built from; undefined when unknown. */
  matchesLive?: boolean;
  /** One sentence for people: where the answer comes from and what differs. */
  detail: string;
}

export function systemLocksDir(paths: StatePaths): string {
  return join(paths.dir, 'system-locks');
}

function recordFile(paths: StatePaths, system: string): string {
  return join(systemLocksDir(paths), `${basename(system)}.json`);
}

/**
 * Remember that `system` (a store path) was built from `lockText` (called by system-upgrade and
 * rollback when they make a system the running one, and by the check when an evaluation proves it).
 */
export function recordSystemLock(
  paths: StatePaths,
  system: string,
  lockText: string,
  extra: { flakeNix?: string } = {},
): void {
  mkdirSync(systemLocksDir(paths), { recursive: true, mode: 0o700 });
  const record: SystemLockRecord = {
    system,
    lockSha256: sha256(lockText),
    lock: lockText,
    ...(extra.flakeNix !== undefined ? { flakeNix: extra.flakeNix } : {}),
    recordedAt: new Date().toISOString(),
  };
  writeJsonAtomic(recordFile(paths, system), record, 0o600);
}

/** hv's record for `system`, or null. Cheap: one small file read (used by `hv status`). */
export function recordedLock(paths: StatePaths, system: string): SystemLockRecord | null {
  const r = readRecord<SystemLockRecord>(
    recordFile(paths, system),
    SystemLockRecordSchema,
    'the lock record',
  );
  return r && r.system === system && typeof r.lock === 'string' ? r : null;
}

/** Compare a known lock with the live one: same locked nodes ⇒ the live lock is what that system ran. */
export function compareWithLive(
  lockText: string,
  where: string,
  live: FlakeLock | undefined,
  input: string,
): { matchesLive?: boolean; rev?: string; differs: string[] } {
  let other: FlakeLock;
  try {
    other = parseFlakeLock(lockText, where);
  } catch {
    return { differs: [] };
  }
  let rev: string | undefined;
  try {
    rev = lockedInput(other, input).locked.rev;
  } catch {
    rev = undefined;
  }
  if (!live) return { rev, differs: [] };
  if (other.sha256 === live.sha256) return { matchesLive: true, rev, differs: [] };
  const differs = lockedDifferences(live, other);
  return { matchesLive: differs.length === 0, rev, differs };
}

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

function lockDetail(what: string, c: { matchesLive?: boolean; differs: string[] }): string {
  if (c.matchesLive === undefined) return `${what}; the live flake.lock could not be read`;
  return c.matchesLive
    ? `${what}; the live flake.lock pins the same sources`
    : `${what}; the live flake.lock differs in ${c.differs.join(', ')}`;
}

/** The tracked input is nixpkgs itself, so that nixos-version's nixpkgsRevision speaks about it. */
function nixpkgsLike(node: LockedInput): boolean {
  const o = node.original;
  return (
    node.name === 'nixpkgs' ||
    [o.repo, o.url, o.id].some((v) => typeof v === 'string' && /(^|\/)nixpkgs(\.git)?(\?|$|\/)/.test(v))
  );
}

/**
 * A backup's lock for `system`: preferably the lock hv installed together with it (exact), else the
 * lock that was live while it ran (right only if that lock was what ran then).
 */
function backupLockOf(paths: StatePaths, system: string): { file: string; backup: string } | undefined {
  for (const d of listBackups(paths.backups).reverse()) {
    const file = join(d, 'installed-flake.lock');
    if (readBackup(d)?.installedSystem === system && existsSync(file)) return { file, backup: d };
  }
  return findLockForSystem(paths.backups, system);
}

export interface LockOfSystemDeps {
  paths: StatePaths;
  config: Config;
  runner: Runner;
}

/**
 * Which flake.lock produced `system`, as far as can be known, and whether the live flake.lock is
 * it: hv's record; else a backup that knows that system; else (running system only) the nixpkgs
 * revision `nixos-version --json` reports; else the live flake's toplevel, evaluated without
 * building and without touching the lock, compared with `system`. A successful evaluation that
 * proves a match is recorded, so the next check is cheap.
 */
export async function lockOfSystem(deps: LockOfSystemDeps, system: string): Promise<SystemLock> {
  const { paths, config, runner } = deps;
  const { dir, input } = config.flake;
  let live: FlakeLock | undefined;
  let liveNode: LockedInput | undefined;
  try {
    live = readFlakeLock(dir);
    liveNode = lockedInput(live, input);
  } catch {
    // Reported by the caller (the check reads the lock itself); here it only means "cannot compare".
  }

  const rec = recordedLock(paths, system);
  if (rec) {
    const c = compareWithLive(rec.lock, `hv's record for ${system}`, live, input);
    return {
      source: 'hv',
      lockText: rec.lock,
      rev: c.rev,
      matchesLive: c.matchesLive,
      detail: lockDetail(`hv recorded the lock of ${basename(system)} on ${rec.recordedAt}`, c),
    };
  }

  const backup = backupLockOf(paths, system);
  if (backup) {
    try {
      const text = readFileSync(backup.file, 'utf8');
      const c = compareWithLive(text, backup.file, live, input);
      return {
        source: 'backup',
        lockText: text,
        rev: c.rev,
        matchesLive: c.matchesLive,
        detail: lockDetail(
          `backup ${basename(backup.backup)} holds the lock ${basename(system)} ran with`,
          c,
        ),
      };
    } catch {
      // an unreadable backup: fall through to what else can be known
    }
  }

  // nixos-version speaks about the running system only, and only of nixpkgs.
  let versionMatch: SystemLock | undefined;
  let versionNote = 'nixos-version does not apply';
  if (liveNode && system === systemPath(config.paths.currentSystem)) {
    const nv = await runner.run([config.tools.nixosVersion, '--json'], { timeoutMs: 10_000 });
    let rev: string | undefined;
    try {
      rev =
        nv.exitCode === 0
          ? (JSON.parse(nv.stdout) as { nixpkgsRevision?: string }).nixpkgsRevision
          : undefined;
    } catch {
      rev = undefined;
    }
    if (!rev) versionNote = 'nixos-version reports no nixpkgs revision';
    else if (!nixpkgsLike(liveNode)) versionNote = `the tracked input ${input} is not nixpkgs`;
    else if (rev !== liveNode.locked.rev)
      return {
        source: 'nixos-version',
        rev,
        matchesLive: false,
        detail: `nixos-version says the running system was built from nixpkgs ${short(rev)}; the live flake.lock locks ${input} ${short(liveNode.locked.rev)}`,
      };
    // Same nixpkgs: likely, but other inputs may differ; an evaluation settles it if it can.
    else
      versionMatch = {
        source: 'nixos-version',
        rev,
        matchesLive: true,
        detail: `nixos-version says the running system was built from nixpkgs ${short(rev)}, the revision the live flake.lock locks (other inputs not compared)`,
      };
  }

  const ev = await evaluateToplevel(deps, system, live);
  const out = ev.out;
  if (out) {
    if (out === system && live && liveNode) {
      try {
        recordSystemLock(paths, system, live.text, {
          flakeNix: readFileSync(join(dir, 'flake.nix'), 'utf8'),
        });
      } catch {
        // best effort: the answer stands without the record
      }
      return {
        source: 'evaluation',
        lockText: live.text,
        rev: liveNode.locked.rev,
        matchesLive: true,
        detail: `the live flake evaluates to ${basename(system)}, the running system`,
      };
    }
    return {
      source: 'evaluation',
      rev: versionMatch?.rev,
      matchesLive: false,
      detail: `the live flake evaluates to ${basename(out)}, not ${basename(system)}: its flake.lock or its configuration changed since that system was built${ev.cachedAt ? ` (evaluated ${ev.cachedAt})` : ''}`,
    };
  }
  if (versionMatch) return versionMatch;
  const why = ev.error ?? 'no output';
  return {
    source: 'unknown',
    detail: `hv cannot tell which flake.lock produced ${basename(system)}: no record, no backup knows it, ${versionNote}, and evaluating the live flake failed (${why.replace(/\s+/g, ' ').trim()})`,
  };
}

/** `<state>/cache/live-eval.json`: the last evaluation of the live flake, reused while nothing changed. */
interface EvalCache {
  system: string;
  host: string;
  lockSha256: string;
  inputsHash: string;
  out: string;
  at: string;
}

const EvalCacheSchema = z
  .object({
    system: z.string(),
    host: z.string(),
    lockSha256: z.string(),
    inputsHash: z.string(),
    out: z.string(),
    at: z.string(),
  })
  .passthrough() satisfies z.ZodType<Stored<EvalCache>, z.ZodTypeDef, unknown>;

/**
 * The cached evaluation, or null. A pure cache: a damaged file is ignored (the flake is evaluated
 * again and the file rewritten), which costs one evaluation and decides nothing.
 */
function readEvalCache(file: string): EvalCache | null {
  try {
    return readRecord<EvalCache>(file, EvalCacheSchema, 'the evaluation cache');
  } catch {
    return null;
  }
}

/**
 * The toplevel store path the live flake evaluates to, without building and without writing the
 * lock (`nix eval --raw --no-update-lock-file`, on every Nix since 2.4). A result is reused while the
 * running system, the live lock and the rest of the flake dir are unchanged, so a flake that does
 * not match is not evaluated again at every check.
 */
async function evaluateToplevel(
  { paths, config, runner }: LockOfSystemDeps,
  system: string,
  live: FlakeLock | undefined,
): Promise<{ out?: string; error?: string; cachedAt?: string }> {
  const { dir } = config.flake;
  const cacheFile = join(paths.cache, 'live-eval.json');
  let key: Omit<EvalCache, 'out' | 'at'> | undefined;
  try {
    if (live) key = { system, host: config.host, lockSha256: live.sha256, inputsHash: inputsHash(dir) };
  } catch {
    key = undefined;
  }
  const cached = readEvalCache(cacheFile);
  if (
    key &&
    cached &&
    cached.system === key.system &&
    cached.host === key.host &&
    cached.lockSha256 === key.lockSha256 &&
    cached.inputsHash === key.inputsHash &&
    cached.out !== system
  )
    return { out: cached.out, cachedAt: cached.at };
  const installable = `${dir}#nixosConfigurations.${config.host}.config.system.build.toplevel.outPath`;
  const ev = await runner.run(
    [config.tools.nix, ...config.nix.extraArgs, 'eval', '--raw', '--no-update-lock-file', installable],
    { timeoutMs: 10 * 60_000 },
  );
  const out = ev.stdout.trim();
  if (ev.exitCode === 0 && out.startsWith('/')) {
    if (key)
      try {
        writeJsonAtomic(cacheFile, { ...key, out, at: new Date().toISOString() }, 0o600);
      } catch {
        // best effort: the next check evaluates again
      }
    return { out };
  }
  const why = ev.spawnError ?? (ev.timedOut ? 'timed out' : lastLines(ev.stderr || `exit ${ev.exitCode}`, 2));
  return { error: why.replace(/\s+/g, ' ').trim() };
}
