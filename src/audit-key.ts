import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { syncDir } from './fs/atomic.js';

/** Length of the audit key in bytes (HMAC-SHA256 key). */
export const AUDIT_KEY_BYTES = 32;

/** What reading `<state>/audit.key` found. The key itself never leaves this object's `key`. */
export type KeyRead =
  | { state: 'present'; key: Buffer; problems: string[] }
  | { state: 'missing' }
  | { state: 'damaged'; reason: string };

/**
 * Read the audit key. `problems` names ownership or mode faults that let someone other than root
 * read or replace the key (checked when running as root; a key others can read lets them forge the
 * chain). Messages name the path and the fix, never the key.
 */
export function readAuditKey(path: string): KeyRead {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'missing' };
    return { state: 'damaged', reason: `cannot read ${path}: ${code ?? String(e)}` };
  }
  if (key.length !== AUDIT_KEY_BYTES)
    return { state: 'damaged', reason: `${path} holds ${key.length} bytes, not ${AUDIT_KEY_BYTES}` };
  const problems: string[] = [];
  const st = statSync(path);
  if (process.getuid?.() === 0 && st.uid !== 0)
    problems.push(
      `audit key ${path} is owned by uid ${st.uid}, not root: whoever owns it can forge the chain (the key may have been replaced)`,
    );
  if ((st.mode & 0o077) !== 0)
    problems.push(
      `audit key ${path} has mode ${(st.mode & 0o777).toString(8)}: group/others may read it and forge the chain; it must be 0600`,
    );
  return { state: 'present', key, problems };
}

/**
 * Create a new random key at `path`: O_EXCL (never overwrites a key another process made), mode
 * 0600 whatever the umask, fsync'd with its directory. A damaged file in the way is moved aside to
 * `<path>.damaged-<time>` first (kept for the admin, not reused). Returns the key.
 */
export function createAuditKey(path: string, now: Date): Buffer {
  const existing = readAuditKey(path);
  if (existing.state === 'present') return existing.key;
  if (existing.state === 'damaged') renameSync(path, `${path}.damaged-${now.toISOString()}`);
  const key = randomBytes(AUDIT_KEY_BYTES);
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, key);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDir(dirname(path));
  return key;
}
