import {
  closeSync,
  type Dirent,
  fstatSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { type ParsedLine, parseLine } from './audit-chain.js';
import { acquireLock } from './lock.js';

// File plumbing of the audit log: reading its end, appending whole lines, its lock.

export function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export function readText(path: string): string {
  return readTextOrNull(path) ?? '';
}

/** The last non-empty line of the log (read from the end), and whether it was cut short. */
export function lastLine(path: string): { last: ParsedLine | null; partial: boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { last: null, partial: false };
  }
  try {
    const size = fstatSync(fd).size;
    for (let want = 64 * 1024; ; want *= 4) {
      const len = Math.min(size, want);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      const text = buf.toString('utf8');
      const partial = len > 0 && !text.endsWith('\n');
      const lines = text.split('\n');
      while (lines.length > 0 && lines.at(-1) === '') lines.pop();
      // The first piece may be cut at the window's start unless the window is the whole file.
      if (lines.length >= (len === size ? 1 : 2) || len === size) {
        const line = lines.at(-1);
        return { last: line === undefined ? null : parseLine(line, 0), partial };
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Append one line (0600 when new), after a newline if the file ends in a partial line; fsync. */
export function appendLine(path: string, line: string): void {
  const fd = openSync(path, 'a+', 0o600);
  try {
    const size = fstatSync(fd).size;
    let sep = '';
    if (size > 0) {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, size - 1);
      if (b[0] !== 0x0a) sep = '\n';
    }
    writeSync(fd, `${sep}${line}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** appendLine on libuv's thread pool: the daemon's event loop keeps serving meanwhile. */
export async function appendLineAsync(path: string, line: string): Promise<void> {
  const fh = await open(path, 'a+', 0o600);
  try {
    const { size } = await fh.stat();
    let sep = '';
    if (size > 0) {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, size - 1);
      if (b[0] !== 0x0a) sep = '\n';
    }
    await fh.write(`${sep}${line}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mtime in ms, or +Infinity when the file does not exist. */
export function modifiedMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** Whether `dir` (down to `depth` levels) holds a file that `counts`. */
export function hasFiles(dir: string, depth: number, counts: (path: string) => boolean): boolean {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  return entries.some((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? depth > 1 && hasFiles(path, depth - 1, counts) : counts(path);
  });
}

/** The append lock, waiting asynchronously (up to 5 s) while another process holds it. */
export async function acquireAppendLock(dir: string) {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return acquireLock(dir, 'audit-append', String(process.pid), 'audit.lock');
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The append lock for a reader; null when it cannot be had (a read-only state dir, a stuck holder). */
export async function tryLock(dir: string) {
  try {
    return await acquireAppendLock(dir);
  } catch {
    return null;
  }
}
