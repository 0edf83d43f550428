import {
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import { HvError } from '../errors.js';
import { makeDir } from '../fs/atomic.js';
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
 * The store side of the closure diff, and what `hv diff` accepts as a system (a path, a profile
 * generation, the running system or the last tested one). Each closure comes from
 * `nix path-info --recursive --size <system>` (the same text on every Nix version); the two run
 * in parallel. A store path never changes and neither does its closure, so each system's listing
 * is cached under `<state>/cache/closures`: upgrade-test, the prompts and `hv diff` ask about the
 * same systems again and again.
 */

const CACHE_KEEP = 16;

/** `nix path-info -rs` output: a store path and its NAR size per line. */
export function parsePathSizes(stdout: string): StorePathInfo[] {
  const out: StorePathInfo[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\/\S+)\s+(\d+)\s*$/.exec(line);
    if (m) out.push({ path: m[1] as string, narSize: Number(m[2]) });
    else if (line.trim())
      throw new HvError('nix-failed', `nix path-info printed a line hv cannot read: "${line.slice(0, 200)}"`);
  }
  return out;
}

const cacheFile = (cacheDir: string, root: string) => join(cacheDir, `${basename(root)}.json`);

/** A cached listing, checked by hand (thousands of entries: a schema library costs more than the diff). */
function readCached(cacheDir: string | undefined, root: string): StorePathInfo[] | undefined {
  if (!cacheDir) return undefined;
  try {
    const data: unknown = JSON.parse(readFileSync(cacheFile(cacheDir, root), 'utf8'));
    if (!Array.isArray(data)) return undefined;
    let hasRoot = false;
    for (const p of data) {
      if (typeof p?.path !== 'string' || typeof p.narSize !== 'number') return undefined;
      if (p.path === root) hasRoot = true;
    }
    // A listing must contain its own root: anything else is not this system's closure.
    return hasRoot ? (data as StorePathInfo[]) : undefined;
  } catch {
    return undefined;
  }
}

function writeCached(cacheDir: string | undefined, root: string, closure: StorePathInfo[]): void {
  if (!cacheDir) return;
  try {
    makeDir(cacheDir);
    // Renamed into place but not fsynced: a listing lost or cut by a crash is not read (see readCached).
    const file = cacheFile(cacheDir, root);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(closure), { mode: 0o600 });
    renameSync(tmp, file);
    const files = readdirSync(cacheDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => ({ f, t: statSync(join(cacheDir, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const { f } of files.slice(CACHE_KEEP)) rmSync(join(cacheDir, f), { force: true });
  } catch {
    // A cache that cannot be written costs time, not correctness.
  }
}

async function queryClosure(runner: Runner, config: Config, root: string): Promise<StorePathInfo[]> {
  const argv = [
    config.tools.nix,
    '--extra-experimental-features',
    'nix-command',
    ...config.nix.extraArgs,
    'path-info',
    '--recursive',
    '--size',
    root,
  ];
  const r = await runner.run(argv, { timeoutMs: 120_000 });
  if (r.exitCode !== 0 || r.spawnError)
    throw new HvError(
      'nix-failed',
      `nix path-info failed for ${root}: ${(r.spawnError ?? r.stderr).trim().split('\n').slice(-3).join(' ') || `exit ${r.exitCode}`}`,
    );
  const closure = parsePathSizes(r.stdout);
  if (!closure.some((p) => p.path === root))
    throw new HvError('nix-failed', `nix path-info did not list ${root} in its own closure`);
  return closure;
}

/** The closures of `roots` with their sizes: from the cache, else from Nix (in parallel). */
export async function queryClosures(
  runner: Runner,
  config: Config,
  roots: readonly string[],
  cacheDir?: string,
): Promise<Map<string, StorePathInfo[]>> {
  const unique = [...new Set(roots)];
  const closures = await Promise.all(
    unique.map(async (root) => {
      const cached = readCached(cacheDir, root);
      if (cached) return cached;
      const closure = await queryClosure(runner, config, root);
      writeCached(cacheDir, root, closure);
      return closure;
    }),
  );
  return new Map(unique.map((root, i) => [root, closures[i] as StorePathInfo[]]));
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

/** What changes from system `from` to system `to` (store paths), with `test.watch` highlighted. */
export async function systemDiff(
  runner: Runner,
  config: Config,
  from: string,
  to: string,
  cacheDir: string | undefined = join(config.paths.state, 'cache', 'closures'),
): Promise<ClosureDiff> {
  const closures = await queryClosures(runner, config, [from, to], cacheDir);
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
          note: 'ran before the last upgrade test; the tested system runs now as a test activation',
        };
      return { path: running, note: 'the running system' };
    },
    to: () => tested().toplevel as string,
  };
}
