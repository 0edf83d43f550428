import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir, writeJsonAtomic } from './fs/atomic.js';
import { acquireLock } from './lock.js';

/** Who asked: a unix user on the CLI, a chat identity, a verified mail sender, or the daemon. */
export interface Actor {
  /** `cli`, `daemon`, or the channel type of the adapter that received the request (`slack`, …). */
  channel: string;
  /** Stable identity, e.g. `root`, `T0123:U0456`, `user:1111`, `alice@example.org`. */
  id: string;
  display?: string;
  /** Discord roles etc. that may grant a role. */
  groups?: string[];
}

export interface AuditEntry {
  actor: Actor;
  operation: string;
  args?: Record<string, unknown>;
  /** allowed | denied | a command status such as passed, failed, applied. */
  result: string;
  details?: Record<string, unknown>;
  requestId?: string;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  at: string;
  host: string;
  prev: string;
  hash: string;
}

const GENESIS = '0'.repeat(64);

function digest(rec: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(JSON.stringify(rec)).digest('hex');
}

/**
 * Append-only, hash-chained audit log `<state>/audit.jsonl`. Each record carries the hash of the
 * previous one; `<state>/audit.head` remembers the last seq and hash so that a deleted tail is
 * detected too.
 */
export class AuditLog {
  readonly file: string;
  private readonly head: string;

  constructor(
    private readonly stateDir: string,
    private readonly host: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.file = join(stateDir, 'audit.jsonl');
    this.head = join(stateDir, 'audit.head');
  }

  append(entry: AuditEntry): AuditRecord {
    makeDir(this.stateDir, 0o700);
    // A short lock of its own: denied chat requests are audited while an operation runs.
    const lock = acquireWithRetry(this.stateDir);
    try {
      const last = this.readHead();
      const base = {
        seq: last.seq + 1,
        at: this.now().toISOString(),
        host: this.host,
        ...entry,
        prev: last.hash,
      };
      const rec: AuditRecord = { ...base, hash: digest(base) };
      appendFileSync(this.file, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
      const fd = openSync(this.file, 'r');
      fsyncSync(fd);
      closeSync(fd);
      writeJsonAtomic(this.head, { seq: rec.seq, hash: rec.hash });
      return rec;
    } finally {
      lock.release();
    }
  }

  private readHead(): { seq: number; hash: string } {
    try {
      return JSON.parse(readFileSync(this.head, 'utf8')) as { seq: number; hash: string };
    } catch {
      return { seq: 0, hash: GENESIS };
    }
  }

  /** Check the whole chain; returns the problems found (empty when intact). */
  verify(): { ok: boolean; records: number; problems: string[] } {
    const problems: string[] = [];
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      text = '';
    }
    const lines = text.split('\n').filter((l) => l.length > 0);
    let prev = GENESIS;
    let seq = 0;
    lines.forEach((line, i) => {
      let rec: AuditRecord;
      try {
        rec = JSON.parse(line) as AuditRecord;
      } catch {
        problems.push(`line ${i + 1}: not valid JSON`);
        return;
      }
      const { hash, ...rest } = rec;
      if (rec.seq !== seq + 1)
        problems.push(`line ${i + 1}: sequence ${rec.seq} follows ${seq} (a record is missing)`);
      if (rec.prev !== prev) problems.push(`line ${i + 1}: does not chain to the previous record`);
      if (digest(rest) !== hash) problems.push(`line ${i + 1}: content does not match its hash (edited)`);
      prev = hash;
      seq = rec.seq;
    });
    const head = this.readHead();
    if (head.seq !== seq || head.hash !== prev)
      problems.push(`log ends at record ${seq} but ${head.seq} were written (records removed from the end)`);
    return { ok: problems.length === 0, records: lines.length, problems };
  }
}

function acquireWithRetry(dir: string) {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return acquireLock(dir, 'audit-append', String(process.pid), 'audit.lock');
    } catch (e) {
      if (Date.now() > deadline) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}
