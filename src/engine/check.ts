import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import type { OpLog } from '../log.js';
import type { Progress } from '../ports/command.js';
import type { Runner } from '../proc.js';
import { type StatePaths, statePaths } from '../state.js';
import type { ConfirmOrigin } from './confirm-window.js';
import {
  type FlakeLock,
  flakeRefUrl,
  type LockedInput,
  lockedInput,
  parseFlakeLock,
  readFlakeLock,
} from './flake-lock.js';
import { newerReleaseBranches, releaseOfRef } from './releases.js';
import { systemPath } from './system.js';
import { compareWithLive, lockOfSystem, type SystemLock } from './system-locks.js';
import { commitTime, gitRemoteOf, isAncestor, upstreamHead } from './upstream.js';

export interface RevInfo {
  rev: string | undefined;
  lastModified: number | undefined;
  /** YYYY-MM-DD of lastModified. */
  date: string | undefined;
}

/** Whether the live flake.lock is what the running system was built from. */
export interface LiveLockState {
  /** true: it is; false: it is not (what it locks is untested); null: hv cannot tell. */
  matchesRunning: boolean | null;
  source: SystemLock['source'];
  detail: string;
  /** The running system's store path (config.paths.currentSystem resolved), if any. */
  system: string | undefined;
  /** The tracked input's revision in the running system's lock, when known. */
  running: RevInfo | undefined;
  /** Locked nodes in which the live lock differs from the running system's, when both are known. */
  differs: string[];
  /** One line for people; set when the lock is not what runs or when hv cannot tell. */
  message: string | undefined;
}

/** The upstream head differs from the locked revision but is behind it: not an update. */
export interface UpstreamBehind {
  rev: string | undefined;
  lastModified: number | undefined;
  date: string | undefined;
  /** `older`: its commit time is before the locked one's; `ancestor`: it is an ancestor of the locked rev. */
  why: 'older' | 'ancestor';
  message: string;
}

export interface CheckResult {
  status: 'up-to-date' | 'update-available';
  host: string;
  input: string;
  source: string;
  branch: string | undefined;
  method: 'git-ls-remote' | 'nix-flake-metadata' | 'none';
  /** The input is pinned to a revision in flake.nix: there is nothing to follow. */
  pinned: boolean;
  current: RevInfo;
  available: RevInfo;
  releases: { branch: string; rev: string }[];
  lockSha256: string;
  checkedAt: string;
  /** The upstream head is newer than the locked revision (what `available` then shows). */
  upstreamUpdate: boolean;
  /** The live flake.lock compared with the running system's lock. */
  liveLock: LiveLockState;
  /** Set when the upstream head is behind the lock (branch reset, force-push). */
  upstreamBehind?: UpstreamBehind;
  /** Set when the live lock is not what runs: why an update is available, for people (with the upstream move, if any). */
  reason?: string;
}

export interface EngineDeps {
  config: Config;
  runner: Runner;
  now: () => Date;
  log: OpLog;
}

/** What an operation that changes state (upgrade test, apply, rollback) runs with. */
export interface OperationDeps extends EngineDeps {
  paths: StatePaths;
  progress: Progress;
  /** Who asked, for a confirmation window (`apply.confirm`); absent: the engine itself (reconciler). */
  origin?: ConfirmOrigin;
}

export function dateOf(lastModified: number | undefined): string | undefined {
  return lastModified ? new Date(lastModified * 1000).toISOString().slice(0, 10) : undefined;
}

function revInfo(rev: string | undefined, lastModified: number | undefined): RevInfo {
  return { rev, lastModified, date: dateOf(lastModified) };
}

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');
const revText = (r: RevInfo) => `${short(r.rev)}${r.date ? ` ${r.date}` : ''}`;
const revParen = (r: RevInfo) => `${short(r.rev)} (${r.date ?? 'date unknown'})`;

/** Compare the live lock with the running system's (see lockOfSystem) and say it in one line. */
async function liveLockState(
  { config, runner }: EngineDeps,
  lock: FlakeLock,
  node: LockedInput,
): Promise<LiveLockState> {
  const system = systemPath(config.paths.currentSystem);
  if (!system)
    return {
      matchesRunning: null,
      source: 'unknown',
      detail: `no running system at ${config.paths.currentSystem}`,
      system,
      running: undefined,
      differs: [],
      message: `cannot tell which flake.lock produced the running system: no running system at ${config.paths.currentSystem}`,
    };
  const known = await lockOfSystem({ paths: statePaths(config), config, runner }, system);
  let running: RevInfo | undefined;
  let differs: string[] = [];
  if (known.lockText !== undefined) {
    const c = compareWithLive(known.lockText, known.source, lock, node.name);
    differs = c.differs;
    let lastModified: number | undefined;
    try {
      lastModified = lockedInput(parseFlakeLock(known.lockText, known.source), node.name).locked.lastModified;
    } catch {
      lastModified = undefined;
    }
    running = revInfo(c.rev, lastModified);
  } else if (known.rev) running = revInfo(known.rev, undefined);
  const matchesRunning = known.matchesLive ?? null;
  const locked = revInfo(node.locked.rev, node.locked.lastModified);
  let message: string | undefined;
  if (matchesRunning === null)
    message = `cannot tell which flake.lock produced the running system (${known.detail})`;
  else if (!matchesRunning) {
    const what =
      running?.rev && running.rev !== locked.rev
        ? `locked ${node.name} ${revText(locked)}, running ${revText(running)}`
        : differs.length
          ? `it differs from the running system's lock in ${differs.join(', ')}`
          : known.detail;
    message = `the live flake.lock is not what runs (${what}); test it with ${HV} upgrade-test`;
  }
  return { matchesRunning, source: known.source, detail: known.detail, system, running, differs, message };
}

/**
 * Compare the locked revision of the tracked input with its upstream head, and the live lock with
 * the running system's lock. Reads flake.lock and asks the upstream; never writes anything under
 * flake.dir. An upstream head behind the lock (older, or an ancestor of the locked rev) is not an
 * update; a live lock that is not what runs is one (it is untested).
 */
export async function checkUpdates(deps: EngineDeps): Promise<CheckResult> {
  const { config, runner, now, log } = deps;
  const { dir, input } = config.flake;
  log.info('read flake.lock', { dir, input });
  const lock = readFlakeLock(dir);
  const node = lockedInput(lock, input);
  const source = flakeRefUrl(node.original);
  const branch =
    gitRemoteOf(node.original)?.branch ??
    (typeof node.original.ref === 'string' ? node.original.ref : undefined);
  const current = revInfo(node.locked.rev, node.locked.lastModified);
  const base = {
    host: config.host,
    input,
    source,
    branch,
    current,
    lockSha256: lock.sha256,
    checkedAt: now().toISOString(),
  };
  const live = async () => {
    const state = await liveLockState(deps, lock, node);
    log.info('live lock compared', {
      system: state.system,
      source: state.source,
      matchesRunning: state.matchesRunning,
      differs: state.differs.join(',') || undefined,
    });
    return state;
  };

  if (typeof node.original.rev === 'string') {
    log.info('input pinned to a revision; nothing to track', { rev: node.original.rev });
    const liveLock = await live();
    const stale = liveLock.matchesRunning === false;
    return {
      ...base,
      status: stale ? 'update-available' : 'up-to-date',
      method: 'none',
      pinned: true,
      available: current,
      releases: [],
      upstreamUpdate: false,
      liveLock,
      ...(stale ? { reason: liveLock.message } : {}),
    };
  }

  log.info('query upstream', { source });
  const head = await upstreamHead(runner, node.original, config.tools, config.nix.extraArgs);
  const changed =
    head.rev !== undefined
      ? head.rev !== node.locked.rev
      : head.narHash !== undefined && head.narHash !== node.locked.narHash;
  let lastModified = changed ? head.lastModified : current.lastModified;
  const cache = statePaths(config).cache;
  if (changed && lastModified === undefined && head.rev && head.method === 'git-ls-remote')
    lastModified = await commitTime(runner, config.tools.git, cache, head.remote, head.rev);
  const upstreamBehind = changed ? await behind(deps, head, node, lastModified, branch) : undefined;
  if (upstreamBehind) log.warn('upstream head behind the lock; not an update', { ...upstreamBehind });
  const upstreamNewer = changed && !upstreamBehind;
  const releases = newerReleaseBranches(head.branches, releaseOfRef(branch));
  log.info('upstream answered', {
    method: head.method,
    locked: node.locked.rev,
    upstream: head.rev,
    update: upstreamNewer,
    releases: releases.map((r) => r.branch).join(',') || undefined,
  });
  const liveLock = await live();
  const stale = liveLock.matchesRunning === false;
  const available = upstreamNewer ? revInfo(head.rev, lastModified) : current;
  const reasons = [
    ...(upstreamNewer
      ? [`upstream ${branch ?? input} moved to ${revText(available)} (locked ${revText(current)})`]
      : []),
    ...(stale && liveLock.message ? [liveLock.message] : []),
  ];
  return {
    ...base,
    status: upstreamNewer || stale ? 'update-available' : 'up-to-date',
    method: head.method,
    pinned: false,
    available,
    releases,
    upstreamUpdate: upstreamNewer,
    liveLock,
    ...(upstreamBehind ? { upstreamBehind } : {}),
    ...(stale ? { reason: reasons.join('; ') } : {}),
  };
}

/**
 * The upstream head is behind the lock when its commit time is before the locked one's, or (git
 * inputs, when the times cannot tell them apart) it is an ancestor of the locked revision.
 */
async function behind(
  { config, runner }: EngineDeps,
  head: { rev: string | undefined; method: string; remote: string },
  node: LockedInput,
  headTime: number | undefined,
  branch: string | undefined,
): Promise<UpstreamBehind | undefined> {
  const lockedTime = node.locked.lastModified;
  let why: UpstreamBehind['why'] | undefined;
  if (headTime !== undefined && lockedTime !== undefined && headTime < lockedTime) why = 'older';
  else if (
    head.method === 'git-ls-remote' &&
    head.rev &&
    node.locked.rev &&
    (headTime === undefined || lockedTime === undefined || headTime === lockedTime) &&
    (await isAncestor(
      runner,
      config.tools.git,
      statePaths(config).cache,
      head.remote,
      head.rev,
      node.locked.rev,
    ))
  )
    why = 'ancestor';
  if (!why) return undefined;
  const seen = revInfo(head.rev, headTime);
  const locked = revInfo(node.locked.rev, lockedTime);
  const relation = why === 'older' ? 'older than' : 'an ancestor of';
  return {
    rev: head.rev,
    lastModified: headTime,
    date: seen.date,
    why,
    message: `upstream ${branch ?? node.name} is at ${revParen(seen)}, ${relation} the locked ${revParen(locked)}: not an update (branch reset or force-push?)`,
  };
}
