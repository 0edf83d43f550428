import { createHash } from 'node:crypto';
import { cpSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir } from '../fs/atomic.js';

/**
 * Copy the live flake dir into a fresh staging dir under `stagingRoot` (keeping `.git`, so a git
 * flake stays one), removing earlier staging copies. The live dir is only read.
 */
export function createStaging(flakeDir: string, stagingRoot: string, now: Date): string {
  makeDir(stagingRoot, 0o700);
  for (const old of readdirSync(stagingRoot))
    rmSync(join(stagingRoot, old), { recursive: true, force: true });
  const dir = join(stagingRoot, `${now.toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  cpSync(flakeDir, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  return dir;
}

/** Names the inputs hash ignores: the lock (compared separately), git metadata, build result links. */
function ignored(rel: string, isLink: boolean): boolean {
  if (rel === 'flake.lock' || rel === '.git' || rel.startsWith('.git/')) return true;
  return isLink && /^result(-[^/]*)?$/.test(rel);
}

/**
 * Every file of the flake dir apart from `flake.lock`, `.git` and `result` links, with a digest of
 * its type, executable bit and content (a symlink by its target), keyed by relative path.
 */
export function inputsManifest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const names = readdirSync(rel ? join(dir, rel) : dir).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (ignored(r, st.isSymbolicLink())) continue;
      if (st.isDirectory()) walk(r);
      else if (st.isSymbolicLink()) out[r] = `l:${readlinkSync(join(dir, r))}`;
      else if (st.isFile())
        out[r] = `f${st.mode & 0o111 ? 'x' : '-'}:${createHash('sha256')
          .update(readFileSync(join(dir, r)))
          .digest('hex')}`;
    }
  };
  walk('');
  return out;
}

/**
 * A hash of the flake dir's content apart from `flake.lock` (see inputsManifest). The same function
 * runs over the staging copy at test time and over the live dir at apply time, so any edit in
 * between (flake.nix, a module, a new or removed file) is detected.
 */
export function inputsHash(dir: string): string {
  return hashManifest(inputsManifest(dir));
}

export function hashManifest(m: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(m).sort()) h.update(`${k}\0${m[k]}\0`);
  return h.digest('hex');
}

/** Paths added, removed or changed between two manifests. */
export function manifestDiff(a: Record<string, string>, b: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}
