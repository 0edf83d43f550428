import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import { HvError } from '../errors.js';
import type { Runner } from '../proc.js';
import type { StatePaths } from '../state.js';
import {
  type ClosureDiff,
  diffClosures,
  parseStoreName,
  type StorePathInfo,
  storeName,
} from './closure-diff.js';
import { listGenerations } from './system.js';
import { readTestResult } from './test-result.js';

/**
 * The store side of the closure diff: one `nix path-info -r --json` for both systems (Nix walks
 * and reports the union once; the two closures are then separated here by following references),
 * and what `hv diff` accepts as a system: a path, a profile generation, the running system or
 * the last tested one.
 */

interface PathInfoJson {
  narSize?: number;
  references?: string[];
}

/** `nix path-info --json`: an array of `{path, …}` before Nix 2.19, an object keyed by path since. */
export function parsePathInfo(
  stdout: string,
  storeDir: string,
): Map<string, { narSize: number; references: string[] }> {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new HvError(
      'nix-failed',
      'nix path-info printed something that is not JSON; is tools.nix a real Nix?',
    );
  }
  const entries: [string, PathInfoJson | null][] = Array.isArray(json)
    ? json.map((e: PathInfoJson & { path: string }) => [e.path, e])
    : Object.entries((json ?? {}) as Record<string, PathInfoJson | null>);
  const full = (p: string) => (p.startsWith('/') ? p : `${storeDir}/${p}`);
  const out = new Map<string, { narSize: number; references: string[] }>();
  for (const [path, info] of entries) {
    if (!info) continue; // not valid in this store
    out.set(full(path), { narSize: info.narSize ?? 0, references: (info.references ?? []).map(full) });
  }
  return out;
}

function closureOf(
  root: string,
  infos: Map<string, { narSize: number; references: string[] }>,
): StorePathInfo[] {
  const seen = new Set<string>([root]);
  const queue = [root];
  const out: StorePathInfo[] = [];
  while (queue.length) {
    const p = queue.pop() as string;
    const info = infos.get(p);
    if (!info)
      throw new HvError(
        'nix-failed',
        `nix path-info did not report ${p}, which is in the closure of ${root}`,
      );
    out.push({ path: p, narSize: info.narSize });
    for (const r of info.references)
      if (!seen.has(r)) {
        seen.add(r);
        queue.push(r);
      }
  }
  return out;
}

/** The store dir of a store path (`/nix/store/<hash>-x/...` → `/nix/store`). */
function storeDirOf(path: string): string {
  const m = /^(.*)\/[0-9a-df-np-sv-z]{32}-[^/]+/.exec(path);
  return m?.[1] ?? '/nix/store';
}

/** The top store path under `path` (`/nix/store/<hash>-linux-6.6/bzImage` → `/nix/store/<hash>-linux-6.6`). */
function storePathOf(path: string): string | undefined {
  return /^(.*\/[0-9a-df-np-sv-z]{32}-[^/]+)/.exec(path)?.[1];
}

/** The kernel version of a NixOS toplevel: the version in the name of what its `kernel` link points to. */
export function kernelVersion(toplevel: string): string | undefined {
  try {
    const target = storePathOf(realpathSync(join(toplevel, 'kernel')));
    if (!target) return undefined;
    return parseStoreName(storeName(target)).version || undefined;
  } catch {
    return undefined;
  }
}

/** Both closures with their sizes, in one Nix call. */
export async function queryClosures(
  runner: Runner,
  config: Config,
  roots: readonly string[],
): Promise<Map<string, StorePathInfo[]>> {
  const argv = [
    config.tools.nix,
    '--extra-experimental-features',
    'nix-command',
    ...config.nix.extraArgs,
    'path-info',
    '--recursive',
    '--json',
    ...new Set(roots),
  ];
  const r = await runner.run(argv, { timeoutMs: 120_000 });
  if (r.exitCode !== 0 || r.spawnError)
    throw new HvError(
      'nix-failed',
      `nix path-info failed for ${roots.join(' and ')}: ${(r.spawnError ?? r.stderr).trim().split('\n').slice(-3).join(' ') || `exit ${r.exitCode}`}`,
    );
  const infos = parsePathInfo(r.stdout, storeDirOf(roots[0] ?? ''));
  return new Map(roots.map((root) => [root, closureOf(root, infos)]));
}

/** What changes from system `from` to system `to` (store paths), with `test.watch` highlighted. */
export async function systemDiff(
  runner: Runner,
  config: Config,
  from: string,
  to: string,
): Promise<ClosureDiff> {
  const closures = await queryClosures(runner, config, [from, to]);
  return diffClosures({
    from: { path: from, closure: closures.get(from) ?? [], kernel: kernelVersion(from) },
    to: { path: to, closure: closures.get(to) ?? [], kernel: kernelVersion(to) },
    watch: config.test.watch,
  });
}

/** A system named on the command line: a generation number of the profile, or a path. */
export function resolveSystem(config: Config, spec: string, flag: string): string {
  const profile = config.paths.profile;
  if (/^\d+$/.test(spec)) {
    const link = `${profile}-${spec}-link`;
    if (!existsSync(link)) {
      const gens = listGenerations(profile).map((g) => g.number);
      throw new HvError(
        'usage',
        `${flag} ${spec}: generation ${spec} of ${profile} does not exist; generations are: ${gens.join(', ') || 'none'}`,
      );
    }
    return realpathSync(link);
  }
  try {
    const real = realpathSync(spec);
    if (!storePathOf(real)) throw new Error('not in the store');
    return storePathOf(real) as string;
  } catch {
    throw new HvError(
      'usage',
      `${flag} ${spec}: not a system in the Nix store; give a store path, a link to one (e.g. /run/current-system) or a generation number of ${profile}`,
    );
  }
}

/**
 * `hv diff`'s defaults: the running system → the system of the last upgrade test. While the tested
 * system itself runs (a test activation lasts until the next switch or boot), "from" is the system
 * the test started from: what an upgrade would change is still measured from there.
 */
export function defaultSystems(
  config: Config,
  paths: StatePaths,
): { from: () => { path: string; note?: string }; to: () => string } {
  const tested = () => {
    const r = readTestResult(paths);
    if (!r?.toplevel)
      throw new HvError(
        'usage',
        `no upgrade test has built a system yet (${paths.testJson}); run "${HV} upgrade-test" or name a system with --to PATH|GENERATION`,
      );
    return r;
  };
  return {
    from: () => {
      const running = resolveSystem(config, config.paths.currentSystem, '--from');
      const r = readTestResult(paths);
      if (r?.toplevel === running && r.previousSystem && r.previousSystem !== running)
        return {
          path: r.previousSystem,
          note: 'the system that ran before the last upgrade test (the tested system runs now, as a test activation)',
        };
      return { path: running, note: 'the running system' };
    },
    to: () => tested().toplevel as string,
  };
}
