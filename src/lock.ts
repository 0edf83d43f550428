import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { HvError } from './errors.js';
import { identityOf, isRunning, type ProcessIdentity, selfIdentity } from './process-identity.js';

/**
 * Who holds the operation lock of a host. `bootId` and `startTime` name the holder beyond its PID,
 * so that a lock left by a previous boot or a reused PID is judged stale; locks written by an older
 * hv lack them and are judged by the PID alone.
 */
export interface LockOwner extends ProcessIdentity {
  operation: string;
  since: string;
  by: string;
}

export interface Lock {
  readonly owner: LockOwner;
  /** Hand the lock to another process (an operation that continues in a child). */
  transfer(pid: number): void;
  release(): void;
}

export const LOCK_FILE = 'operation.lock';

/** The lock file's text; null only when there is none (released meanwhile). */
function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new HvError(
      'state-corrupt',
      `cannot read the lock file ${path}: ${code ?? String(e)}; if no hv operation is running, remove it: rm ${path}`,
      { path },
    );
  }
}

export function describeOwner(o: LockOwner): string {
  return `${o.operation} since ${o.since} by ${o.by} (pid ${o.pid})`;
}

/**
 * Take the one-operation-per-host lock `<dir>/<name>`. The lock file appears atomically with its
 * content (written to a temp file, then hard-linked into place), so a reader never sees it half
 * written. A lock whose process is gone (ended, or of a previous boot, or whose PID now names
 * another process) is stale and recovered.
 */
export function acquireLock(dir: string, operation: string, by: string, name = LOCK_FILE): Lock {
  const path = join(dir, name);
  const owner: LockOwner = { ...selfIdentity(), operation, since: new Date().toISOString(), by };
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  writeFileSync(tmp, JSON.stringify(owner), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
        return makeLock(path, owner);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const text = readText(path);
      if (text === null) continue; // released meanwhile
      const held = parseOwner(path, text);
      if (isRunning(held)) {
        throw new HvError('busy', `another operation holds the lock: ${describeOwner(held)}`, {
          owner: held,
        });
      }
      // Stale: remove it only if it is still the very file we judged dead.
      if (readText(path) === text) rmSync(path, { force: true });
    }
    throw new HvError('busy', `could not take the lock ${path}; try again`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

const LockOwnerRecord = z
  .object({
    pid: z.number().int().positive(),
    operation: z.string(),
    since: z.string(),
    by: z.string(),
    bootId: z.string().optional(),
    startTime: z.number().optional(),
  })
  .passthrough();

/**
 * A lock file appears whole (it is hard-linked into place), so one that does not parse was edited
 * or written by something else: say so and how to clear it, rather than guess that it is stale.
 */
function parseOwner(path: string, text: string): LockOwner {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const r = LockOwnerRecord.safeParse(raw);
  if (!r.success)
    throw new HvError(
      'state-corrupt',
      `the lock file ${path} is not a lock record hv wrote (edited by hand, or another program's file); if no hv operation is running, remove it: rm ${path}`,
      { path },
    );
  return r.data as LockOwner;
}

function makeLock(path: string, owner: LockOwner): Lock {
  let released = false;
  return {
    owner,
    transfer(pid: number) {
      // The child's own identity, read now while it runs, so the lock dies with the child.
      const child = identityOf(pid);
      owner.pid = child.pid;
      owner.bootId = child.bootId;
      owner.startTime = child.startTime;
      const tmp = `${path}.${process.pid}.transfer`;
      writeFileSync(tmp, JSON.stringify(owner), { mode: 0o600 });
      renameSync(tmp, path); // readers see either the old or the new owner
    },
    release() {
      if (released) return;
      released = true;
      let text: string | null;
      try {
        text = readText(path);
      } catch {
        return; // unreadable: not provably ours, so left for the admin the next taker tells
      }
      if (text === null) return;
      // A file that is not our record (replaced or edited meanwhile) is not ours to remove.
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return;
      }
      const held = LockOwnerRecord.safeParse(raw);
      if (held.success && held.data.pid === owner.pid && held.data.since === owner.since)
        rmSync(path, { force: true });
    },
  };
}
