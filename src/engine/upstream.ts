import { join } from 'node:path';
import { HV } from '../cli-name.js';
import { HvError } from '../errors.js';
import { makeDir } from '../fs/atomic.js';
import type { Runner, RunResult } from '../proc.js';
import { type FlakeRefAttrs, flakeRefUrl } from './flake-lock.js';

/** Where a git-hosted input lives and which ref it follows. */
export interface GitRemote {
  url: string;
  /** Full ref name, e.g. refs/heads/nixos-24.05, or HEAD. */
  ref: string;
  branch: string | undefined;
}

export interface UpstreamHead {
  /** Revision of the upstream head; undefined for inputs without revisions (tarballs). */
  rev: string | undefined;
  narHash?: string;
  lastModified?: number;
  /** Branches named `nixos-*` found upstream (git-hosted inputs only). */
  branches: { branch: string; rev: string }[];
  method: 'git-ls-remote' | 'nix-flake-metadata';
  remote: string;
}

/** Environment that keeps git from ever prompting (the daemon has no terminal). */
export const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o ConnectTimeout=20',
  GIT_ASKPASS: 'true',
};

export function gitRemoteOf(original: FlakeRefAttrs): GitRemote | null {
  const ref = typeof original.ref === 'string' ? original.ref : undefined;
  const full = ref === undefined ? 'HEAD' : ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
  const branch = full.startsWith('refs/heads/') ? full.slice('refs/heads/'.length) : undefined;
  const hosted = (host: string) => `https://${original.host ?? host}/${original.owner}/${original.repo}`;
  switch (original.type) {
    case 'github':
      return { url: `${hosted('github.com')}.git`, ref: full, branch };
    case 'gitlab':
      return { url: `${hosted('gitlab.com')}.git`, ref: full, branch };
    case 'sourcehut':
      return { url: hosted('git.sr.ht'), ref: full, branch };
    case 'git':
      return typeof original.url === 'string' ? { url: original.url, ref: full, branch } : null;
    default:
      return null;
  }
}

function failure(what: string, r: RunResult): HvError {
  const why =
    r.spawnError ??
    (r.timedOut ? 'timed out' : r.stderr.trim().split('\n').slice(-3).join(' ') || `exit ${r.exitCode}`);
  return new HvError(
    'upstream-unreachable',
    `${what} failed: ${why}. Check the network and the input's URL, then run "${HV} check-updates" again.`,
  );
}

/** Find the head of the tracked ref: `git ls-remote` for git-hosted inputs, else `nix flake metadata`. */
export async function upstreamHead(
  runner: Runner,
  original: FlakeRefAttrs,
  tools: { git: string; nix: string },
  nixArgs: string[] = [],
): Promise<UpstreamHead> {
  const remote = gitRemoteOf(original);
  if (remote) {
    const patterns = [remote.ref, 'refs/heads/nixos-*'];
    const r = await runner.run([tools.git, 'ls-remote', remote.url, ...patterns], {
      env: GIT_ENV,
      timeoutMs: 120_000,
    });
    if (r.exitCode !== 0) throw failure(`git ls-remote ${remote.url}`, r);
    const refs = r.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((p): p is [string, string] => p.length === 2 && /^[0-9a-f]{40}$/.test(p[0] ?? ''));
    const head = refs.find(([, name]) => name === remote.ref);
    if (!head)
      throw new HvError(
        'upstream-unreachable',
        `${remote.url} has no ref ${remote.ref}; the tracked branch may have been removed. Point the input at an existing branch.`,
      );
    const branches = refs
      .filter(([, name]) => name.startsWith('refs/heads/nixos-'))
      .map(([rev, name]) => ({ branch: name.slice('refs/heads/'.length), rev }));
    return { rev: head[0], branches, method: 'git-ls-remote', remote: remote.url };
  }
  const url = flakeRefUrl({ ...original, rev: undefined });
  const r = await runner.run([tools.nix, ...nixArgs, 'flake', 'metadata', '--json', '--refresh', url], {
    timeoutMs: 300_000,
  });
  if (r.exitCode !== 0) throw failure(`nix flake metadata ${url}`, r);
  const meta = JSON.parse(r.stdout) as { revision?: string; lastModified?: number; locked?: FlakeRefAttrs };
  return {
    rev: meta.revision ?? meta.locked?.rev,
    narHash: meta.locked?.narHash as string | undefined,
    lastModified: meta.lastModified ?? meta.locked?.lastModified,
    branches: [],
    method: 'nix-flake-metadata',
    remote: url,
  };
}

/**
 * Commit time of `rev` at `url`, fetched cheaply: a treeless, depth-1 fetch into a cache repository
 * (a few kilobytes even for nixpkgs). Best effort: undefined when it cannot be had.
 */
export async function commitTime(
  runner: Runner,
  git: string,
  cacheDir: string,
  url: string,
  rev: string,
): Promise<number | undefined> {
  const repo = join(cacheDir, 'upstream.git');
  try {
    makeDir(cacheDir, 0o700);
    const init = await runner.run([git, 'init', '--quiet', '--bare', repo], {
      env: GIT_ENV,
      timeoutMs: 30_000,
    });
    if (init.exitCode !== 0) return undefined;
    const fetch = await runner.run(
      [git, '-C', repo, 'fetch', '--quiet', '--no-tags', '--depth=1', '--filter=tree:0', url, rev],
      { env: GIT_ENV, timeoutMs: 120_000 },
    );
    if (fetch.exitCode !== 0) return undefined;
    const show = await runner.run([git, '-C', repo, 'show', '-s', '--format=%ct', rev], {
      env: GIT_ENV,
      timeoutMs: 30_000,
    });
    const t = Number(show.stdout.trim());
    return show.exitCode === 0 && Number.isFinite(t) && t > 0 ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Commits fetched behind the locked revision to look for the upstream head among its ancestors. */
const ANCESTRY_DEPTH = 1000;

/**
 * Whether `ancestor` is an ancestor of `rev` at `url`, learnt from the same cache repository as
 * `commitTime`: a treeless fetch of `rev` with a bounded history (commits only, a few hundred
 * kilobytes at most). Best effort: false when it cannot be known.
 */
export async function isAncestor(
  runner: Runner,
  git: string,
  cacheDir: string,
  url: string,
  ancestor: string,
  rev: string,
): Promise<boolean> {
  const repo = join(cacheDir, 'upstream.git');
  try {
    makeDir(cacheDir, 0o700);
    const init = await runner.run([git, 'init', '--quiet', '--bare', repo], {
      env: GIT_ENV,
      timeoutMs: 30_000,
    });
    if (init.exitCode !== 0) return false;
    const fetch = await runner.run(
      [
        git,
        '-C',
        repo,
        'fetch',
        '--quiet',
        '--no-tags',
        `--depth=${ANCESTRY_DEPTH}`,
        '--filter=tree:0',
        url,
        rev,
      ],
      { env: GIT_ENV, timeoutMs: 120_000 },
    );
    if (fetch.exitCode !== 0) return false;
    const r = await runner.run([git, '-C', repo, 'merge-base', '--is-ancestor', ancestor, rev], {
      env: GIT_ENV,
      timeoutMs: 30_000,
    });
    return r.exitCode === 0;
  } catch {
    return false;
  }
}
