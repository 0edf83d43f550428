import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir, writeFileAtomic, writeJsonAtomic } from '../fs/atomic.js';
import { assertTrusted } from '../fs/trust.js';
import { readRecord } from '../state.js';
import { sha256 } from './flake-lock.js';
import { BackupManifestSchema } from './records.js';

/** `<state>/backups/<ts>/manifest.json`: what a backup holds and which system it belongs to. */
export interface BackupManifest {
  createdAt: string;
  dir: string;
  flakeDir: string;
  /** sha256 of the backed-up flake.lock (absent when there was none). */
  lockSha256: string | undefined;
  /** The system (store path) and generation that ran with this lock. */
  system: string | undefined;
  generation: number | undefined;
  /** The system installed right after this backup, with its lock in `installed-flake.lock`. */
  installedSystem?: string;
  /** sha256 of the backed-up flake.nix (`flake.nix`, next to `flake.lock`). */
  flakeNixSha256?: string;
  /** A release upgrade installed another flake.nix with it: kept as `installed-flake.nix`. */
  installedFlakeNixSha256?: string;
  /** Other paths copied (backup.paths that existed), source → copy. */
  paths: { source: string; copy: string }[];
}

export interface BackupInput {
  backupsRoot: string;
  flakeDir: string;
  extraPaths: string[];
  system: string | undefined;
  generation: number | undefined;
  keep: number;
  now: Date;
  /**
   * The system about to be installed and its lock (so a later rollback *to* it finds its lock), and
   * its flake.nix when a release upgrade installs a new one.
   */
  installing?: { system: string; lock: string; flakeNix?: string };
}

/**
 * A timestamped backup under `<state>/backups/<ts>/`: `flake.lock`, the whole flake dir as
 * `flake/`, every existing `backup.paths` entry under `paths/<absolute path>`, and a manifest.
 * Older backups beyond `keep` are removed.
 */
export function makeBackup(b: BackupInput): BackupManifest {
  makeDir(b.backupsRoot, 0o700);
  let name = b.now.toISOString().replace(/[:.]/g, '-');
  for (let i = 1; existsSync(join(b.backupsRoot, name)); i++)
    name = `${b.now.toISOString().replace(/[:.]/g, '-')}-${i}`;
  const dir = join(b.backupsRoot, name);
  makeDir(dir, 0o700);
  const lockPath = join(b.flakeDir, 'flake.lock');
  let lockSha256: string | undefined;
  if (existsSync(lockPath)) {
    cpSync(lockPath, join(dir, 'flake.lock'), { preserveTimestamps: true });
    lockSha256 = sha256(readFileSync(lockPath));
  }
  // flake.nix next to flake.lock: a rollback across a release upgrade restores the pair.
  const nixPath = join(b.flakeDir, 'flake.nix');
  let flakeNixSha256: string | undefined;
  if (existsSync(nixPath)) {
    cpSync(nixPath, join(dir, 'flake.nix'), { preserveTimestamps: true });
    flakeNixSha256 = sha256(readFileSync(nixPath));
  }
  cpSync(b.flakeDir, join(dir, 'flake'), {
    recursive: true,
    verbatimSymlinks: true,
    preserveTimestamps: true,
  });
  if (b.installing) writeFileAtomic(join(dir, 'installed-flake.lock'), b.installing.lock);
  if (b.installing?.flakeNix !== undefined)
    writeFileAtomic(join(dir, 'installed-flake.nix'), b.installing.flakeNix);
  const paths: BackupManifest['paths'] = [];
  for (const source of b.extraPaths) {
    if (!existsSync(source)) continue;
    const copy = join(dir, 'paths', source);
    cpSync(source, copy, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    paths.push({ source, copy });
  }
  const manifest: BackupManifest = {
    createdAt: b.now.toISOString(),
    dir,
    flakeDir: b.flakeDir,
    lockSha256,
    system: b.system,
    generation: b.generation,
    installedSystem: b.installing?.system,
    flakeNixSha256,
    ...(b.installing?.flakeNix !== undefined
      ? { installedFlakeNixSha256: sha256(b.installing.flakeNix) }
      : {}),
    paths,
  };
  writeJsonAtomic(join(dir, 'manifest.json'), manifest);
  pruneBackups(b.backupsRoot, b.keep);
  return manifest;
}

/** Backup dirs, oldest first (their names are timestamps). */
export function listBackups(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort()
      .map((n) => join(root, n));
  } catch {
    return [];
  }
}

export function pruneBackups(root: string, keep: number): string[] {
  const all = listBackups(root);
  const drop = all.slice(0, Math.max(0, all.length - keep));
  for (const d of drop) rmSync(d, { recursive: true, force: true });
  return drop;
}

/**
 * A backup's manifest, or null when it has none. A damaged one is HvError('state-corrupt') naming
 * it: which lock belongs to which system must not be guessed.
 */
export function readBackup(dir: string): BackupManifest | null {
  return readRecord<BackupManifest>(join(dir, 'manifest.json'), BackupManifestSchema, 'the backup manifest');
}

/** The flake.lock of a system and the flake.nix that goes with it, as a backup kept them. */
export interface SavedFlake {
  file: string;
  backup: string;
  /** flake.nix of that system (undefined in a backup that has none). */
  flakeNix: string | undefined;
}

/** flake.nix as a backup made before an upgrade kept it: `flake.nix`, else the `flake/` copy. */
export function backedUpFlakeNix(dir: string): string | undefined {
  return [join(dir, 'flake.nix'), join(dir, 'flake', 'flake.nix')].find((f) => existsSync(f));
}

/**
 * The flake.lock (and flake.nix) that belong to `system`, newest backup first: the ones backed up
 * while it ran, or the ones installed together with it. Undefined when no backup knows that system.
 */
export function findLockForSystem(root: string, system: string): SavedFlake | undefined {
  for (const d of listBackups(root).reverse()) {
    // What is found here is installed in the live flake dir: only backups nobody else could write.
    assertTrusted(
      'backup',
      d,
      join(d, 'manifest.json'),
      join(d, 'flake.lock'),
      join(d, 'installed-flake.lock'),
      join(d, 'flake.nix'),
      join(d, 'installed-flake.nix'),
      join(d, 'flake', 'flake.nix'),
    );
    const m = readBackup(d);
    if (m?.system === system && existsSync(join(d, 'flake.lock')))
      return { file: join(d, 'flake.lock'), backup: d, flakeNix: backedUpFlakeNix(d) };
    if (m?.installedSystem === system && existsSync(join(d, 'installed-flake.lock'))) {
      // Without a release upgrade the installed flake.nix is the one backed up.
      const installed = join(d, 'installed-flake.nix');
      return {
        file: join(d, 'installed-flake.lock'),
        backup: d,
        flakeNix: existsSync(installed) ? installed : backedUpFlakeNix(d),
      };
    }
  }
  return undefined;
}
