import { dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { HvError } from '../errors.js';
import type { Runner, RunResult } from '../proc.js';

/** A Nix version, e.g. 2.8.0 → { major: 2, minor: 8 }. */
export interface NixVersion {
  major: number;
  minor: number;
  text: string;
}

const cache = new Map<string, Promise<NixVersion>>();

/** `nix --version`, asked once per process and tool. */
export function nixVersion(runner: Runner, nix: string): Promise<NixVersion> {
  let p = cache.get(nix);
  if (!p) {
    p = (async () => {
      const r = await runner.run([nix, '--version'], { timeoutMs: 30_000 });
      const m = /(\d+)\.(\d+)(?:\.\d+)?/.exec(r.stdout);
      if (r.exitCode !== 0 || !m)
        throw new HvError(
          'nix-failed',
          `cannot tell the Nix version ("${nix} --version" said: ${(r.spawnError ?? r.stderr ?? r.stdout).trim() || `exit ${r.exitCode}`}); check tools.nix in the config`,
        );
      return { major: Number(m[1]), minor: Number(m[2]), text: m[0] };
    })();
    cache.set(nix, p);
    p.catch(() => cache.delete(nix));
  }
  return p;
}

export function atLeast(v: NixVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/**
 * The argv that updates only `input` of the flake in `dir`: `nix flake update <input> --flake dir`
 * since 2.19, `nix flake lock dir --update-input <input>` before. `--refresh` so that a cached
 * branch head is not taken for the upstream's.
 */
export function updateInputArgv(v: NixVersion, nix: string, extra: string[], dir: string, input: string) {
  return atLeast(v, 2, 19)
    ? [nix, ...extra, 'flake', 'update', input, '--flake', dir, '--refresh']
    : [nix, ...extra, 'flake', 'lock', dir, '--update-input', input, '--refresh'];
}

/**
 * The argv that builds an installable without a result link and prints its outputs as JSON (works on
 * every Nix; `--print-out-paths` is missing before 2.10). `-L` streams build logs.
 */
export function buildArgv(nix: string, extra: string[], installable: string): string[] {
  return [nix, ...extra, 'build', '--no-link', '--json', '-L', installable];
}

/** The `out` path of `nix build --json` output. */
export function parseBuildOutput(stdout: string): string | undefined {
  try {
    const j = JSON.parse(stdout.trim()) as { outputs?: Record<string, string> }[];
    return j[0]?.outputs?.out;
  } catch {
    // Some versions print a line of JSON after other text: take the last line that parses.
    for (const line of stdout.trim().split('\n').reverse()) {
      try {
        const j = JSON.parse(line) as { outputs?: Record<string, string> }[];
        if (j[0]?.outputs?.out) return j[0].outputs.out;
      } catch {
        // keep looking
      }
    }
    return undefined;
  }
}

/** A sibling tool of `nix` (nix-store, nix-env): next to it when configured as a path. */
export function sibling(nix: string, name: string): string {
  return nix.includes('/') ? join(dirname(nix), name) : name;
}

export function nixStore(config: Config): string {
  return sibling(config.tools.nix, 'nix-store');
}

/** Protect `storePath` from garbage collection with an indirect root `<gcRoots>/<name>`. */
export async function addGcRoot(runner: Runner, config: Config, name: string, storePath: string) {
  const root = join(config.paths.gcRoots, name);
  const r = await runner.run([nixStore(config), '--add-root', root, '--indirect', '--realise', storePath], {
    timeoutMs: 120_000,
  });
  if (r.exitCode !== 0) throw nixFailure(`nix-store --add-root ${root}`, r);
  return root;
}

/** True when the store path exists and Nix considers it valid. */
export async function storePathValid(runner: Runner, config: Config, storePath: string): Promise<boolean> {
  const r = await runner.run([nixStore(config), '--check-validity', storePath], { timeoutMs: 60_000 });
  return r.exitCode === 0;
}

export function nixFailure(what: string, r: RunResult): HvError {
  const text = (r.spawnError ?? `${r.stderr}\n${r.stdout}`).trim();
  return new HvError('nix-failed', `${what} failed (exit ${r.exitCode}): ${lastLines(text, 20)}`);
}

/** The last `n` lines of a text (the useful end of a build log). */
export function lastLines(text: string, n: number): string {
  const lines = text.trim().split('\n');
  return lines.slice(-n).join('\n');
}
