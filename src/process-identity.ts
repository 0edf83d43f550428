import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A process named beyond its PID, for records that outlive it (locks, markers, claims): the boot
 * it ran in and its start time. After a reboot, or once the kernel hands the PID to another
 * process, the PID alone would name an unrelated live process and wedge whatever it guards.
 */
export interface ProcessIdentity {
  pid: number;
  /** `/proc/sys/kernel/random/boot_id` of the boot the process ran in. */
  bootId?: string;
  /** Start time in clock ticks after boot (field 22 of `/proc/<pid>/stat`). */
  startTime?: number;
}

/** Where procfs is mounted; a parameter so that tests can point at a fake tree. */
export const PROC = '/proc';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The start time (field 22) of a `/proc/<pid>/stat` line, or null when it is not one. The second
 * field, the command name in parentheses, may itself contain spaces and `)`, so the fields are
 * counted from after the LAST `)`: there, field 3 (state) comes first and field 22 is the 20th.
 */
export function parseStartTime(stat: string): number | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const raw = fields[22 - 3];
  if (raw === undefined || !/^\d+$/.test(raw)) return null;
  const ticks = Number(raw);
  return Number.isSafeInteger(ticks) ? ticks : null;
}

/** The id of the running boot, or null where procfs does not tell. */
export function currentBootId(proc = PROC): string | null {
  const text = readText(join(proc, 'sys/kernel/random/boot_id'));
  const id = text?.trim();
  return id ? id : null;
}

/** Start time of `pid`, or null when it cannot be read (no such process, no procfs). */
export function startTimeOf(pid: number, proc = PROC): number | null {
  const text = readText(join(proc, String(pid), 'stat'));
  return text === null ? null : parseStartTime(text);
}

/** The identity of `pid` as far as procfs tells (fields it cannot read are left out). */
export function identityOf(pid: number, proc = PROC): ProcessIdentity {
  const id: ProcessIdentity = { pid };
  const bootId = currentBootId(proc);
  const startTime = startTimeOf(pid, proc);
  if (bootId !== null) id.bootId = bootId;
  if (startTime !== null) id.startTime = startTime;
  return id;
}

/** This process's identity, to be written into a record it owns. */
export function selfIdentity(proc = PROC): ProcessIdentity {
  return identityOf(process.pid, proc);
}

/** `kill(pid, 0)`: a process with that PID exists (EPERM: it does, but is not ours to signal). */
export function pidExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process a record names still runs: a record of another boot never does; otherwise a
 * process with that PID must exist and, when the record has a start time, have started at that
 * very time (else the PID was reused). A record without boot id or start time (written by an
 * older hv) and a host without procfs fall back to the PID check alone.
 */
export function isRunning(record: Partial<ProcessIdentity>, proc = PROC): boolean {
  const { pid, bootId, startTime } = record;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return false;
  const boot = currentBootId(proc);
  if (typeof bootId === 'string' && boot !== null && bootId !== boot) return false;
  if (!pidExists(pid)) return false;
  if (typeof startTime !== 'number') return true;
  const now = startTimeOf(pid, proc);
  // Unreadable although the PID exists: procfs hidden (hidepid) or the process just ended; only
  // the PID check is left, and it errs on the side of "running".
  if (now === null) return true;
  return now === startTime;
}
