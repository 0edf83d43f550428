import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/**
 * Create `dir` and any missing parents with exactly `mode` (0o700 for hv's own dirs), whatever the
 * umask; existing dirs are left as they are.
 */
export function makeDir(dir: string, mode = 0o700): void {
  const first = mkdirSync(dir, { recursive: true, mode });
  if (first === undefined) return;
  // mkdir applies the umask: set the mode explicitly on each dir this call created.
  let d = first;
  chmodSync(d, mode);
  for (const part of relative(first, dir).split(sep).filter(Boolean)) {
    d = join(d, part);
    chmodSync(d, mode);
  }
}

/**
 * The mode a write gets when the caller names none: the existing file's permissions without
 * group/other write (the live flake.lock keeps its 0644), else 0o600.
 */
function defaultMode(path: string): number {
  try {
    return statSync(path).mode & 0o755;
  } catch {
    return 0o600;
  }
}

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory.
 * The file gets exactly `mode` (set with fchmod, so the umask does not matter; see defaultMode when
 * omitted); a missing directory is created with `dirMode`.
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode?: number,
  dirMode = 0o700,
  /** Give the file to this user before it appears under its name (root handing a file over). */
  owner?: { uid: number; gid: number },
): void {
  const dir = dirname(path);
  makeDir(dir, dirMode);
  const fileMode = mode ?? defaultMode(path);
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    fchmodSync(fd, fileMode);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dir);
}

export function writeJsonAtomic(path: string, value: unknown, mode?: number): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** fsync a directory so a rename in it survives power loss. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * writeFileAtomic without blocking the event loop: the same steps (temp file, fchmod, write,
 * fsync, rename, fsync of the directory) on libuv's thread pool. For the daemon's hot paths (the
 * audit head), where a synchronous fsync would hold up every chat acknowledgement meanwhile.
 */
export async function writeFileAtomicAsync(path: string, data: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  makeDir(dir, 0o700);
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  try {
    const d = await open(dir, 'r');
    await d.sync().catch(() => undefined);
    await d.close();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}
