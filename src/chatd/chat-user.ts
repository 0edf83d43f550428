import { execFileSync } from 'node:child_process';
import { HvError } from '../errors.js';

/** The chat user's uid, gid and home (`getent passwd`, so NSS users count too). */
export function chatUser(name: string): { uid: number; gid: number; home: string } {
  if (process.getuid?.() !== 0) {
    // Not root: the chat process runs as this same user (tests, sandboxes); nothing to switch to.
    return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: '/' };
  }
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new HvError(
      'config-invalid',
      `chatops.user "${name}" does not exist; create it (a system user with no login) or set chatops.user to an existing unprivileged user`,
    );
  }
  const [, , uid, gid, , home] = line.split(':');
  if (Number(uid) === 0)
    throw new HvError('config-invalid', `chatops.user "${name}" is root; it must be an unprivileged user`);
  return { uid: Number(uid), gid: Number(gid), home: home || '/' };
}
