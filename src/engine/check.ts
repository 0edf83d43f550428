import type { Config } from '../config/schema.js';
import type { OpLog } from '../log.js';
import type { Runner } from '../proc.js';
import { statePaths } from '../state.js';
import { flakeRefUrl, lockedInput, readFlakeLock } from './flake-lock.js';
import { newerReleaseBranches, releaseOfRef } from './releases.js';
import { commitTime, gitRemoteOf, upstreamHead } from './upstream.js';

export interface RevInfo {
  rev: string | undefined;
  lastModified: number | undefined;
  /** YYYY-MM-DD of lastModified. */
  date: string | undefined;
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
}

export interface EngineDeps {
  config: Config;
  runner: Runner;
  now: () => Date;
  log: OpLog;
}

export function dateOf(lastModified: number | undefined): string | undefined {
  return lastModified ? new Date(lastModified * 1000).toISOString().slice(0, 10) : undefined;
}

function revInfo(rev: string | undefined, lastModified: number | undefined): RevInfo {
  return { rev, lastModified, date: dateOf(lastModified) };
}

/**
 * Compare the locked revision of the tracked input with its upstream head. Reads flake.lock and
 * asks the upstream; never writes anything under flake.dir.
 */
export async function checkUpdates({ config, runner, now, log }: EngineDeps): Promise<CheckResult> {
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

  if (typeof node.original.rev === 'string') {
    log.info('input pinned to a revision; nothing to track', { rev: node.original.rev });
    return { ...base, status: 'up-to-date', method: 'none', pinned: true, available: current, releases: [] };
  }

  log.info('query upstream', { source });
  const head = await upstreamHead(runner, node.original, config.tools, config.nix.extraArgs);
  const changed =
    head.rev !== undefined
      ? head.rev !== node.locked.rev
      : head.narHash !== undefined && head.narHash !== node.locked.narHash;
  let lastModified = changed ? head.lastModified : current.lastModified;
  if (changed && lastModified === undefined && head.rev && head.method === 'git-ls-remote') {
    lastModified = await commitTime(
      runner,
      config.tools.git,
      statePaths(config).cache,
      head.remote,
      head.rev,
    );
  }
  const releases = newerReleaseBranches(head.branches, releaseOfRef(branch));
  log.info('upstream answered', {
    method: head.method,
    locked: node.locked.rev,
    upstream: head.rev,
    update: changed,
    releases: releases.map((r) => r.branch).join(',') || undefined,
  });
  return {
    ...base,
    status: changed ? 'update-available' : 'up-to-date',
    method: head.method,
    pinned: false,
    available: changed ? revInfo(head.rev, lastModified) : current,
    releases,
  };
}
