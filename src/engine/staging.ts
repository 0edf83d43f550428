import { createHash } from 'node:crypto';
import { cpSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Copy the live flake dir into a fresh staging dir under `stagingRoot` (keeping `.git`, so a git
 * flake stays one), removing earlier staging copies. The live dir is only read.
 */
export function createStaging(flakeDir: string, stagingRoot: string, now: Date): string {
  mkdirSync(stagingRoot, { recursive: true });
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
 * A hash of the flake dir's content apart from `flake.lock`: every file's relative path, type,
 * executable bit and content (a symlink by its target), in a stable order. The same function runs
 * over the staging copy at test time and over the live dir at apply time, so any edit in between
 * (flake.nix, a module, a new file) is detected.
 */
export function inputsHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    const abs = rel ? join(dir, rel) : dir;
    const names = readdirSync(abs).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      if (ignored(r, st.isSymbolicLink())) continue;
      if (st.isDirectory()) {
        h.update(`d ${r}\0`);
        walk(r);
      } else if (st.isSymbolicLink()) {
        h.update(`l ${r}\0${readlinkSync(join(dir, r))}\0`);
      } else if (st.isFile()) {
        const content = readFileSync(join(dir, r));
        h.update(`f ${r} ${st.mode & 0o111 ? 'x' : '-'} ${content.length}\0`);
        h.update(content);
      }
    }
  };
  walk('');
  return h.digest('hex');
}
