import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { errorMessage, isHvError } from '../errors.js';
import { EVENT_TYPES, type HvEvent } from '../events.js';
import { makeDir, syncDir, writeJsonAtomic } from '../fs/atomic.js';
import { isRunning, selfIdentity } from '../process-identity.js';
import { readRecord, type Stored } from '../state.js';

/**
 * The durable outbox: one JSON file per delivery under `<state>/notify/outbox/`, each written
 * atomically (temp file, fsync, rename), so a kill -9 at any moment leaves every record either in its
 * old or its new state, never half-written. Light on purpose (node:fs only): `hv status` reads it.
 */

/**
 * `held`: gathered for an email digest until its period ends; `pending`: to be attempted at
 * `nextAt`; `done`: delivered (kept a while so a restart never re-sends it); `dead`: gave up after
 * `notify.maxAttempts` or a permanent error, until `hv notify retry`.
 */
export type DeliveryState = 'held' | 'pending' | 'done' | 'dead';

export interface DeliveryRecord {
  /** The idempotency key handed to the adapter (`Delivery.id`), also the file name. */
  id: string;
  channel: string;
  /** One event, or the events of a digest. */
  kind: 'event' | 'digest';
  state: DeliveryState;
  events: HvEvent[];
  createdAt: string;
  /** Order among records created in the same millisecond (publication order). */
  seq?: number;
  /** Attempts made (counted before each attempt starts, so a crash mid-attempt counts too). */
  attempts: number;
  nextAt: string;
  lastAttemptAt?: string;
  lastError?: string;
  doneAt?: string;
  /** For `held` events and digests: the digest period and when it ends. */
  digest?: { kind: 'daily' | 'weekly' | 'monthly'; period: string; label: string; endsAt: string };
}

/** Per channel: waiting for a first attempt, failed at least once and retrying, given up. */
export type DeliveryStats = Record<
  string,
  { pending: number; retrying: number; dead: number; held: number; lastError?: string }
>;

const EventSchema = z
  .object({
    id: z.string(),
    type: z.enum(EVENT_TYPES),
    host: z.string(),
    at: z.string(),
    key: z.string(),
    title: z.string(),
    data: z.record(z.unknown()),
    next: z.string().optional(),
    detailsFile: z.string().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<HvEvent>, z.ZodTypeDef, unknown>;

const DeliveryRecordSchema = z
  .object({
    id: z.string(),
    channel: z.string(),
    kind: z.enum(['event', 'digest']),
    state: z.enum(['held', 'pending', 'done', 'dead']),
    events: z.array(EventSchema),
    createdAt: z.string(),
    seq: z.number().optional(),
    attempts: z.number().int(),
    nextAt: z.string(),
    lastAttemptAt: z.string().optional(),
    lastError: z.string().optional(),
    doneAt: z.string().optional(),
    digest: z
      .object({
        kind: z.enum(['daily', 'weekly', 'monthly']),
        period: z.string(),
        label: z.string(),
        endsAt: z.string(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<DeliveryRecord>, z.ZodTypeDef, unknown>;

/** Suffix of a notification record that could not be read and was moved aside (`hv status` lists them). */
export const BROKEN_SUFFIX = '.broken';

/**
 * Move a damaged record aside (`<file>.<ms>.broken`), kept for the admin to inspect; returns the
 * new path. It is then neither delivered nor read again, and `hv status` names it.
 */
export function moveAside(path: string): string {
  const to = `${path}.${Date.now()}${BROKEN_SUFFIX}`;
  renameSync(path, to);
  return to;
}

/** Told about a damaged record: what is wrong (naming the file) and where it was moved. */
export type OnBroken = (message: string, movedTo: string) => void;

export class Outbox {
  readonly dir: string;
  private readonly lockDir: string;

  /**
   * `onBroken`: the owner of delivery (the hub) moves a damaged record aside and is told; without
   * it (read-only views such as `hv status`) a damaged record is skipped and left where it is.
   */
  constructor(
    notifyDir: string,
    private readonly onBroken?: OnBroken,
  ) {
    this.dir = join(notifyDir, 'outbox');
    this.lockDir = join(notifyDir, 'locks');
  }

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  put(rec: DeliveryRecord): void {
    writeJsonAtomic(this.file(rec.id), rec, 0o600);
  }

  /** The record, or null when there is none; a damaged one is HvError('state-corrupt') naming it. */
  get(id: string): DeliveryRecord | null {
    return readRecord<DeliveryRecord>(this.file(id), DeliveryRecordSchema, 'the notification record');
  }

  remove(id: string): void {
    rmSync(this.file(id), { force: true });
  }

  /** Every record, oldest first. Temp files of an interrupted write (".…tmp") are not records. */
  all(): DeliveryRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: DeliveryRecord[] = [];
    for (const n of names) {
      if (n.startsWith('.') || !n.endsWith('.json')) continue;
      try {
        const r = this.get(n.slice(0, -'.json'.length));
        if (r) out.push(r);
      } catch (e) {
        // One damaged record must not stop every other delivery, nor vanish unseen.
        if (!isHvError(e) || e.code !== 'state-corrupt' || !this.onBroken) continue;
        const path = join(this.dir, n);
        try {
          this.onBroken(e.message, moveAside(path));
        } catch (m) {
          this.onBroken(`${e.message} (moving it aside failed: ${errorMessage(m)})`, path);
        }
      }
    }
    return out.sort(
      (a, b) =>
        a.createdAt.localeCompare(b.createdAt) || (a.seq ?? 0) - (b.seq ?? 0) || a.id.localeCompare(b.id),
    );
  }

  /**
   * Claim a delivery for one attempt, across processes (the daemon and a CLI run may drain at the
   * same time): an exclusive lock file naming our process (pid, boot id, start time). A lock whose
   * process is gone (kill -9, a reboot, its PID reused) or that is older than `staleMs` is taken
   * over. Returns the release function, or null when busy.
   */
  claim(id: string, staleMs: number): (() => void) | null {
    makeDir(this.lockDir, 0o700);
    const path = join(this.lockDir, `${id}.lock`);
    for (let i = 0; i < 2; i++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        const me = selfIdentity();
        writeSync(fd, `${me.pid} ${me.bootId ?? '-'} ${me.startTime ?? '-'}\n`);
        closeSync(fd);
        return () => rmSync(path, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (!isStale(path, staleMs)) return null;
        rmSync(path, { force: true });
      }
    }
    return null;
  }

  /** Remove temp files left by a write that a crash interrupted (older than an hour). */
  sweepTemp(nowMs: number): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    let removed = false;
    for (const n of names) {
      if (!n.startsWith('.') || !n.endsWith('.tmp')) continue;
      try {
        if (nowMs - statSync(join(this.dir, n)).mtimeMs > 3_600_000) {
          rmSync(join(this.dir, n), { force: true });
          removed = true;
        }
      } catch {
        // gone already
      }
    }
    if (removed) syncDir(this.dir);
  }
}

/** A claim file holds `<pid> <boot id> <start time>` (`-` where unknown; older hv: the pid alone). */
function isStale(lockPath: string, staleMs: number): boolean {
  try {
    const [pid, bootId, startTime] = readFileSync(lockPath, 'utf8').trim().split(/\s+/);
    if (Date.now() - statSync(lockPath).mtimeMs > staleMs) return true;
    return !isRunning({
      pid: Number(pid),
      bootId: bootId && bootId !== '-' ? bootId : undefined,
      startTime: startTime && startTime !== '-' ? Number(startTime) : undefined,
    });
  } catch {
    // unreadable or vanished: someone just released it; try again
    return true;
  }
}

/** Counts per channel for `hv status` and `hv notify list`; cheap (a directory of small files). */
export function deliveryStats(notifyDir: string): DeliveryStats {
  const stats: DeliveryStats = {};
  for (const r of new Outbox(notifyDir).all()) {
    if (r.state === 'done') continue;
    const s = stats[r.channel] ?? { pending: 0, retrying: 0, dead: 0, held: 0 };
    stats[r.channel] = s;
    if (r.state === 'dead') s.dead += 1;
    else if (r.state === 'held') s.held += 1;
    else if (r.attempts > 0) s.retrying += 1;
    else s.pending += 1;
    if (r.lastError && r.state !== 'held') s.lastError = r.lastError;
  }
  return stats;
}

/**
 * Notification records that cannot be read, for `hv status`: damaged outbox records not yet moved
 * aside (the message names the file) and the files moved aside before (`*.broken`).
 */
export function unreadableNotifyRecords(notifyDir: string): string[] {
  const out: string[] = [];
  const outbox = new Outbox(notifyDir);
  for (const dir of [notifyDir, outbox.dir]) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const path = join(dir, n);
      if (n.endsWith(BROKEN_SUFFIX))
        out.push(
          `${path}: a damaged notification record, moved aside (not delivered); inspect it, then remove it`,
        );
      else if (dir === outbox.dir && !n.startsWith('.') && n.endsWith('.json')) {
        try {
          outbox.get(n.slice(0, -'.json'.length));
        } catch (e) {
          out.push(errorMessage(e));
        }
      }
    }
  }
  return out;
}
