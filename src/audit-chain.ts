import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuditRecord, LegacyAuditRecord } from './audit-record.js';

/** `prev` of the very first record of a chain. */
export const GENESIS = '0'.repeat(64);

// Domain separation: a record MAC can never be replayed as a head MAC or the other way round.
const RECORD_TAG = 'hv-audit-record-v1\n';
const HEAD_TAG = 'hv-audit-head-v1\n';

/** HMAC-SHA256 of a keyed record without its `mac` (its content, including `prev`). */
export function recordMac(key: Buffer, body: Omit<AuditRecord, 'mac'>): string {
  return createHmac('sha256', key).update(RECORD_TAG).update(JSON.stringify(body)).digest('hex');
}

/** The unkeyed sha256 of records written before the chain was keyed (kept to verify them). */
export function legacyHash(body: Omit<LegacyAuditRecord, 'hash'>): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export function headMac(key: Buffer, seq: number, mac: string): string {
  return createHmac('sha256', key).update(HEAD_TAG).update(JSON.stringify({ seq, mac })).digest('hex');
}

export function macEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** One non-empty line of `audit.jsonl`; `n` is its 1-based line number in the file. */
export type ParsedLine =
  | { n: number; kind: 'keyed'; rec: AuditRecord }
  | { n: number; kind: 'legacy'; rec: LegacyAuditRecord }
  | { n: number; kind: 'invalid'; reason: string };

export function parseLine(text: string, n: number): ParsedLine {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { n, kind: 'invalid', reason: 'not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || typeof (v as { seq?: unknown }).seq !== 'number')
    return { n, kind: 'invalid', reason: 'not an audit record' };
  const o = v as Record<string, unknown>;
  if (typeof o.mac === 'string' && typeof o.prev === 'string')
    return { n, kind: 'keyed', rec: v as AuditRecord };
  if (typeof o.hash === 'string' && typeof o.prev === 'string')
    return { n, kind: 'legacy', rec: v as LegacyAuditRecord };
  return { n, kind: 'invalid', reason: 'neither a keyed nor an unkeyed audit record' };
}

export function parseLog(text: string): ParsedLine[] {
  const out: ParsedLine[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.length > 0) out.push(parseLine(line, i + 1));
  });
  return out;
}

/** An audit-integrity incident that `append` found and wrote into the chain (see AuditLog). */
export function isIncident(rec: AuditRecord): boolean {
  return rec.actor?.channel === 'hv' && rec.operation === 'audit' && rec.result === 'incident';
}

export interface ChainReport {
  keyed: number;
  legacy: number;
  problems: string[];
  /** The last well-formed record and the value the next record must carry as `prev`. */
  last: { seq: number; link: string; rec: AuditRecord | LegacyAuditRecord } | null;
}

/**
 * Check links, sequence numbers and MACs (or legacy hashes) of every line. A verified unkeyed
 * prefix followed by keyed records is accepted: the first keyed record carries the last legacy
 * hash as `prev`, so the prefix is sealed under the key. With `key` null, MACs are not checked
 * (the caller reports the missing key). Records before the last key-replaced incident were MAC'd
 * under a key that is gone: they are reported once as unverifiable.
 */
export function checkChain(lines: ParsedLine[], key: Buffer | null): ChainReport {
  const problems: string[] = [];
  let rekeyAt = -1;
  lines.forEach((l, i) => {
    if (l.kind === 'keyed' && isIncident(l.rec) && l.rec.details?.kind === 'key-replaced') rekeyAt = i;
  });
  let link = GENESIS;
  let seq = 0;
  let keyed = 0;
  let legacy = 0;
  let last: ChainReport['last'] = null;
  const unverifiable: number[] = [];
  lines.forEach((l, i) => {
    if (l.kind === 'invalid') {
      problems.push(`line ${l.n}: ${l.reason}`);
      return;
    }
    const rec = l.rec;
    if (rec.seq !== seq + 1)
      problems.push(`line ${l.n}: sequence ${rec.seq} follows ${seq} (a record is missing)`);
    if (rec.prev !== link) problems.push(`line ${l.n}: does not chain to the previous record`);
    if (l.kind === 'legacy') {
      legacy++;
      const { hash, ...body } = l.rec;
      if (keyed > 0)
        problems.push(
          `line ${l.n}: unkeyed record after keyed ones (inserted, or the chain was recomputed without the key)`,
        );
      else if (legacyHash(body) !== hash)
        problems.push(`line ${l.n}: content does not match its hash (edited)`);
      link = hash;
    } else {
      keyed++;
      const { mac, ...body } = l.rec;
      if (i < rekeyAt) unverifiable.push(l.n);
      else if (key && !macEqual(recordMac(key, body), mac))
        problems.push(`line ${l.n}: content does not match its MAC (edited, or recomputed without the key)`);
      if (isIncident(l.rec))
        problems.push(
          `line ${l.n}: hv recorded an audit incident at ${rec.at}: ${String(rec.details?.problem)}`,
        );
      link = mac;
    }
    seq = rec.seq;
    last = { seq, link, rec };
  });
  if (unverifiable.length > 0) {
    problems.unshift(
      `lines ${unverifiable[0]}-${unverifiable.at(-1)}: written under an audit key that is gone (replaced at line ${lines[rekeyAt]?.n}); they cannot be verified`,
    );
  }
  return { keyed, legacy, problems, last };
}

/** What `<state>/audit.head` holds: keyed (with its own MAC), the unkeyed pre-key format, or junk. */
export type HeadRead =
  | { kind: 'missing' }
  | { kind: 'invalid' }
  | { kind: 'keyed'; seq: number; mac: string; headMac: string }
  | { kind: 'legacy'; seq: number; hash: string };

export function readHead(path: string): HeadRead {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? { kind: 'missing' } : { kind: 'invalid' };
  }
  if (typeof v?.seq !== 'number') return { kind: 'invalid' };
  if (typeof v.mac === 'string' && typeof v.headMac === 'string')
    return { kind: 'keyed', seq: v.seq, mac: v.mac, headMac: v.headMac };
  if (typeof v.hash === 'string') return { kind: 'legacy', seq: v.seq, hash: v.hash };
  return { kind: 'invalid' };
}

/**
 * Compare the head with the end of the log. A log exactly one record past the head is accepted
 * when that record links to the head: an append wrote its (MAC-checked) record and was stopped
 * before it updated the head.
 */
export function checkHead(
  head: HeadRead,
  last: ChainReport['last'],
  key: Buffer | null,
  opts: { keyed: boolean; headPath: string },
): string[] {
  const name = opts.headPath;
  if (head.kind === 'missing')
    return [`${name} is missing: removal of records from the end cannot be ruled out`];
  if (head.kind === 'invalid') return [`${name} is not a valid head record`];
  if (opts.keyed && head.kind === 'legacy')
    return [`${name} is not keyed although the log is (rewritten without the key)`];
  const problems: string[] = [];
  const headLink = head.kind === 'keyed' ? head.mac : head.hash;
  if (head.kind === 'keyed' && key && !macEqual(headMac(key, head.seq, head.mac), head.headMac))
    problems.push(`${name} does not match its MAC (rewritten without the key)`);
  const seq = last?.seq ?? 0;
  const link = last?.link ?? GENESIS;
  if (seq === head.seq && link === headLink) return problems;
  if (seq === head.seq + 1 && last?.rec.prev === headLink) return problems;
  problems.push(
    seq < head.seq
      ? `log ends at record ${seq} but ${head.seq} were written (records removed from the end)`
      : `log ends at record ${seq} but ${name} names record ${head.seq} (records added or replaced without updating the head)`,
  );
  return problems;
}
