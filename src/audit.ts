import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ChainReport,
  checkChain,
  checkHead,
  GENESIS,
  headMac,
  macEqual,
  type ParsedLine,
  parseLog,
  readHead,
  recordMac,
} from './audit-chain.js';
import {
  acquireAppendLock,
  appendLineAsync,
  hasFiles,
  lastLine,
  modifiedMs,
  readText,
  readTextOrNull,
  tryLock,
} from './audit-files.js';
import { createAuditKey, readAuditKey } from './audit-key.js';
import type { Actor, AuditEntry, AuditRecord, LegacyAuditRecord } from './audit-record.js';
import { HV } from './cli-name.js';
import { makeDir, writeFileAtomicAsync } from './fs/atomic.js';

export type { Actor, AuditEntry, AuditRecord, LegacyAuditRecord };

/** How an actor is named in records and logs: `root` on the CLI, `<channel>:<id>` elsewhere. */
export function actorLabel(actor: Actor): string {
  return actor.channel === 'cli' ? actor.id : `${actor.channel}:${actor.id}`;
}

/** What `hv audit --verify` reports. */
export interface AuditVerification {
  ok: boolean;
  /** Lines in the log. */
  records: number;
  /** True when the log is protected by the key (it has keyed records). */
  keyed: boolean;
  keyedRecords: number;
  /** Unkeyed records from before the key (a sealed prefix when followed by keyed records). */
  legacyRecords: number;
  /** One sentence per problem, naming the line or file. Empty when intact. */
  problems: string[];
}

/** Where the next record links to: its predecessor's seq and MAC (or hash). */
interface Link {
  seq: number;
  link: string;
}

/** The identity of incident records that `append` writes about the log itself. */
const AUDIT_ACTOR: Actor = { channel: 'hv', id: 'audit' };

/**
 * State that only exists after an audited operation: if any of it exists, `audit.jsonl` must have
 * records. Every command that writes these files is audited after it runs (execute() audits
 * exclusive and confirmed commands, the bus audits every chat request it claims, recovery audits
 * what it finishes), and the key and head are written only by `append`. `operations/` counts only
 * when it holds files: the daemon creates its empty subdirectories at start without auditing.
 * `verify` applies this rule as it is. `append` runs at the end of the very command that wrote some
 * of these files, so there only files older than EVIDENCE_AGE_MS count: state from before the
 * command being audited. (A command killed after writing its state and before its audit record
 * is reported as well; that is the safe side.)
 */
const EVIDENCE_FILES = [
  'audit.key',
  'audit.head',
  'last-check.json',
  'upgrade-test-result.json',
  'last-upgrade.json',
  'last-rollback.json',
];
const EVIDENCE_AGE_MS = 60_000;

/**
 * Append-only audit log `<state>/audit.jsonl`, chained with HMAC-SHA256 under a root-only key
 * `<state>/audit.key` (created on first append, 0600). Each record's MAC covers its content and the
 * previous MAC; `<state>/audit.head` names the last record and carries its own MAC, so neither a
 * rewritten chain nor a truncated tail verifies without the key.
 *
 * An unkeyed log from an earlier hv is sealed by the first keyed record (its `prev` is the last
 * unkeyed hash). Whatever `append` finds wrong (an unkeyed log that does not verify, a missing key,
 * head or log) it writes into the chain as an incident record, which `verify` reports for good.
 */
export class AuditLog {
  readonly file: string;
  private readonly headPath: string;
  private readonly keyPath: string;

  constructor(
    private readonly stateDir: string,
    private readonly host: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.file = join(stateDir, 'audit.jsonl');
    this.headPath = join(stateDir, 'audit.head');
    this.keyPath = join(stateDir, 'audit.key');
  }

  /**
   * Append one record. Async because it may wait for the short append lock (another process is
   * appending): the wait must not block the daemon's event loop, which serves chat meanwhile.
   */
  append(entry: AuditEntry): Promise<AuditRecord> {
    // One at a time within this process (the writes are asynchronous); the file lock below
    // orders processes.
    const turn = this.queue.then(() => this.appendNow(entry));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private queue: Promise<unknown> = Promise.resolve();

  private async appendNow(entry: AuditEntry): Promise<AuditRecord> {
    makeDir(this.stateDir, 0o700);
    // A short lock of its own: denied chat requests are audited while an operation runs.
    const lock = await acquireAppendLock(this.stateDir);
    try {
      const now = this.now();
      const { key, start, incidents } = this.prepare(now);
      let last = start;
      for (const details of incidents) {
        const rec = await this.write(
          key,
          last,
          { actor: AUDIT_ACTOR, operation: 'audit', result: 'incident', details },
          now,
        );
        last = { seq: rec.seq, link: rec.mac };
      }
      return await this.write(key, last, entry, now);
    } finally {
      lock.release();
    }
  }

  /**
   * Find the key and the end of the chain, and what is wrong with them. Runs under the lock.
   * The common case reads only the key, the head and the last line.
   */
  private prepare(now: Date): { key: Buffer; start: Link; incidents: Record<string, unknown>[] } {
    const incidents: Record<string, unknown>[] = [];
    const keyRead = readAuditKey(this.keyPath);
    const head = readHead(this.headPath);
    const tail = lastLine(this.file);
    if (tail.last?.kind === 'invalid')
      incidents.push({
        kind: 'damaged-line',
        problem: `the log ended in a line that is not a whole record (${tail.last.reason}; an append was interrupted or the line was damaged)`,
      });
    // The last whole record: from the tail, or (rarely: a damaged last line) from the whole log.
    let lastRec: WholeLine | null = null;
    if (tail.last?.kind === 'invalid') lastRec = parseLog(readText(this.file)).filter(isWhole).at(-1) ?? null;
    else if (tail.last) lastRec = tail.last;
    const keyedHistory = head.kind === 'keyed' || lastRec?.kind === 'keyed';
    let start: Link = lastRec ? { seq: lastRec.rec.seq, link: linkOf(lastRec) } : { seq: 0, link: GENESIS };

    if (keyedHistory && keyRead.state === 'present') {
      const key = keyRead.key;
      const last = lastRec;
      if (head.kind !== 'keyed') {
        incidents.push({
          kind: 'head-missing',
          problem: `audit.head was ${head.kind === 'missing' ? 'missing' : 'replaced'}: records may have been removed from the end`,
        });
      } else if (!macEqual(headMac(key, head.seq, head.mac), head.headMac)) {
        incidents.push({
          kind: 'head-forged',
          problem: 'audit.head did not match its MAC (rewritten without the key)',
        });
      } else if (!last) {
        // Continue the numbering after the head: the gap stays visible.
        start = { seq: head.seq, link: head.mac };
        incidents.push({
          kind: 'log-deleted',
          problem: `audit.jsonl was missing or empty but audit.head names record ${head.seq}: the log was deleted`,
        });
      } else {
        const headOk = checkHead(head, { seq: last.rec.seq, link: linkOf(last), rec: last.rec }, key, {
          keyed: true,
          headPath: 'audit.head',
        });
        const tailMacOk = last.kind === 'keyed' && macEqual(recordMac(key, stripMac(last.rec)), last.rec.mac);
        if (headOk.length > 0 || !tailMacOk)
          incidents.push({
            kind: 'tail-mismatch',
            problem: `the log ended at record ${last.rec.seq} but audit.head named record ${head.seq}, or the last record did not match its MAC`,
          });
      }
      return { key, start, incidents };
    }

    if (keyedHistory) {
      // Keyed records exist but their key is gone: nothing before this point can be verified again.
      const reason = keyRead.state === 'damaged' ? `damaged (${keyRead.reason})` : 'missing';
      if (!lastRec && head.kind === 'keyed') start = { seq: head.seq, link: head.mac };
      incidents.push({
        kind: 'key-replaced',
        problem: `the audit key was ${reason}; a new key was created: the records before this one cannot be verified`,
      });
      return { key: createAuditKey(this.keyPath, now), start, incidents };
    }

    // No keyed history: a fresh host, or an unkeyed log from an earlier hv to seal.
    if (keyRead.state === 'present')
      incidents.push({
        kind: 'key-without-records',
        problem:
          'the audit key existed but no record was keyed: the log was rewritten or deleted without the key',
      });
    const full = parseLog(readText(this.file));
    if (full.length === 0) {
      if (head.kind === 'legacy') start = { seq: head.seq, link: head.hash };
      // Real time, not the injected clock: it is compared with file mtimes.
      const evidence = this.operationEvidence(Date.now() - EVIDENCE_AGE_MS);
      if (keyRead.state !== 'present' && evidence.length > 0)
        incidents.push({
          kind: 'log-deleted',
          problem: `there was no audit log although ${evidence.join(', ')} showed earlier operations: the log was deleted`,
          evidence,
        });
    } else {
      const report = checkChain(full, null);
      const problems = [
        ...report.problems,
        ...checkHead(head, report.last, null, { keyed: false, headPath: 'audit.head' }),
      ];
      if (problems.length > 0)
        incidents.push({
          kind: 'legacy-unverified',
          problem: `the unkeyed log from an earlier hv (${full.length} records) did not verify when it was sealed under the key; it is kept but cannot be trusted`,
          problems,
        });
    }
    return { key: createAuditKey(this.keyPath, now), start, incidents };
  }

  /** Under the append lock; the fsyncs run on the thread pool, not on the event loop. */
  private async write(key: Buffer, last: Link, entry: AuditEntry, now: Date): Promise<AuditRecord> {
    const body = { seq: last.seq + 1, at: now.toISOString(), host: this.host, ...entry, prev: last.link };
    const rec: AuditRecord = { ...body, mac: recordMac(key, body) };
    await appendLineAsync(this.file, JSON.stringify(rec));
    await writeFileAtomicAsync(
      this.headPath,
      `${JSON.stringify({ seq: rec.seq, mac: rec.mac, headMac: headMac(key, rec.seq, rec.mac) }, null, 2)}\n`,
      0o600,
    );
    return rec;
  }

  /**
   * State files (names relative to the state dir) that show operations ran here (see
   * EVIDENCE_FILES); with `before`, only files last modified before that time (ms since epoch).
   */
  private operationEvidence(before = Number.POSITIVE_INFINITY): string[] {
    const counts = (path: string) => modifiedMs(path) < before;
    const found = EVIDENCE_FILES.filter((f) => counts(join(this.stateDir, f)));
    if (hasFiles(join(this.stateDir, 'operations'), 2, counts)) found.push('operations/');
    return found;
  }

  /** Check the whole chain, its head and its key; returns the problems found (empty when intact). */
  async verify(): Promise<AuditVerification> {
    // Under the append lock so that a concurrent append is never seen half done.
    const lock = existsSync(this.stateDir) ? await tryLock(this.stateDir) : null;
    try {
      return this.verifyUnlocked();
    } finally {
      lock?.release();
    }
  }

  private verifyUnlocked(): AuditVerification {
    const text = readTextOrNull(this.file);
    const lines = parseLog(text ?? '');
    const result = (problems: string[], report?: ChainReport): AuditVerification => ({
      ok: problems.length === 0,
      records: lines.length,
      keyed: (report?.keyed ?? 0) > 0,
      keyedRecords: report?.keyed ?? 0,
      legacyRecords: report?.legacy ?? 0,
      problems,
    });
    if (lines.length === 0) {
      const evidence = this.operationEvidence();
      return result(
        evidence.length === 0
          ? []
          : [
              `${this.file} is ${text === null ? 'missing' : 'empty'} but ${evidence.join(', ')} in ${this.stateDir} show that operations ran on this host: the audit log was deleted`,
            ],
      );
    }
    const keyRead = readAuditKey(this.keyPath);
    const key = keyRead.state === 'present' ? keyRead.key : null;
    const report = checkChain(lines, key);
    const problems: string[] = [];
    if (report.keyed > 0) {
      if (keyRead.state === 'missing')
        problems.push(
          `the audit key ${this.keyPath} is gone: the ${report.keyed} keyed records cannot be verified (verification impossible)`,
        );
      if (keyRead.state === 'damaged')
        problems.push(
          `the audit key is damaged (${keyRead.reason}): the ${report.keyed} keyed records cannot be verified`,
        );
    } else if (keyRead.state !== 'missing') {
      problems.push(
        `the audit key ${this.keyPath} exists but no record is keyed: the log was rewritten without the key`,
      );
    } else if (report.legacy > 0) {
      problems.push(
        `the log has only unkeyed records (${report.legacy}, from an hv before the keyed audit log): their hashes can be recomputed by anyone. The next audited operation seals them under a key (run ${HV} check-updates), then verify again`,
      );
    }
    if (keyRead.state === 'present') problems.push(...keyRead.problems);
    problems.push(...report.problems);
    problems.push(
      ...checkHead(readHead(this.headPath), report.last, key, {
        keyed: report.keyed > 0,
        headPath: this.headPath,
      }),
    );
    return result(problems, report);
  }
}

type WholeLine = Exclude<ParsedLine, { kind: 'invalid' }>;

function isWhole(l: ParsedLine): l is WholeLine {
  return l.kind !== 'invalid';
}

function linkOf(l: WholeLine): string {
  return l.kind === 'keyed' ? l.rec.mac : l.rec.hash;
}

function stripMac(rec: AuditRecord): Omit<AuditRecord, 'mac'> {
  const { mac: _mac, ...body } = rec;
  return body;
}
