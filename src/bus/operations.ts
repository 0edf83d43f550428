import { createHash } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Actor } from '../audit.js';
import { Exit, errorMessage, isHvError } from '../errors.js';
import { execute } from '../execute.js';
import { makeDir, writeJsonAtomic } from '../fs/atomic.js';
import type { AnyCommand, CommandResult } from '../ports/command.js';
import type { Services } from '../services.js';
import { readRecord, type Stored } from '../state.js';
import type { ReplyAddress } from './types.js';

/** One accepted chat/email command, persisted so that it survives a daemon restart. */
export interface OperationRecord {
  id: string;
  requestId: string;
  command: string;
  argv: string[];
  args: Record<string, unknown>;
  actor: Actor;
  replyTo: ReplyAddress;
  confirmed: boolean;
  /** `child`: a detached `hv` process runs it; `inline`: the daemon runs it (read-only commands). */
  mode: 'child' | 'inline';
  createdAt: string;
  /** The detached child running it, named beyond its PID (see process-identity.ts). */
  pid?: number;
  bootId?: string;
  startTime?: number;
}

/** A Keep button offered in a request's thread, persisted so that a click after a restart counts. */
export interface KeepOffer {
  token: string;
  windowId: string;
  operationId: string;
  requestId: string;
  command: string;
  requester: Actor;
  deadline: string;
}

/** A progress line the operation wrote. */
export interface ProgressLine {
  step: string;
  detail?: string;
  at: string;
}

/** A confirmation waiting for admin clicks. */
export interface PendingConfirmation {
  token: string;
  requestId: string;
  command: string;
  argv: string[];
  args: Record<string, unknown>;
  requester: Actor;
  replyTo: ReplyAddress;
  expiresAt: string;
  needed: number;
  /** actorKey of each admin that approved so far. */
  approvers: string[];
  approverActors: Actor[];
  /** What the prompt said would change (the command's preview); re-checked at the last approval. */
  preview?: string;
}

export interface RequestClaim {
  key: string;
  at: string;
  operationId?: string;
  outcome?: string;
}

// Schemas of the files below; each is checked against its type (`satisfies`).
const ActorSchema = z
  .object({
    channel: z.string(),
    id: z.string(),
    display: z.string().optional(),
    groups: z.array(z.string()).optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<Actor>, z.ZodTypeDef, unknown>;
const ReplyAddressSchema = z
  .object({ channel: z.string(), data: z.record(z.unknown()) })
  .passthrough() satisfies z.ZodType<Stored<ReplyAddress>, z.ZodTypeDef, unknown>;

const OperationRecordSchema = z
  .object({
    id: z.string(),
    requestId: z.string(),
    command: z.string(),
    argv: z.array(z.string()),
    args: z.record(z.unknown()),
    actor: ActorSchema,
    replyTo: ReplyAddressSchema,
    confirmed: z.boolean(),
    mode: z.enum(['child', 'inline']),
    createdAt: z.string(),
    pid: z.number().int().optional(),
    bootId: z.string().optional(),
    startTime: z.number().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<OperationRecord>, z.ZodTypeDef, unknown>;

const ProgressLineSchema = z
  .object({ step: z.string(), detail: z.string().optional(), at: z.string() })
  .passthrough() satisfies z.ZodType<Stored<ProgressLine>, z.ZodTypeDef, unknown>;

const CommandResultSchema = z
  .object({
    status: z.enum([
      'ok',
      'up-to-date',
      'update-available',
      'passed',
      'failed',
      'applied',
      'refused',
      'rolled-back',
      'busy',
      'error',
    ]),
    exitCode: z.nativeEnum(Exit),
    message: z.string(),
    data: z.record(z.unknown()),
    audit: z.record(z.unknown()).optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<CommandResult>, z.ZodTypeDef, unknown>;

const PendingConfirmationSchema = z
  .object({
    token: z.string(),
    requestId: z.string(),
    command: z.string(),
    argv: z.array(z.string()),
    args: z.record(z.unknown()),
    requester: ActorSchema,
    replyTo: ReplyAddressSchema,
    expiresAt: z.string(),
    needed: z.number().int(),
    approvers: z.array(z.string()),
    approverActors: z.array(ActorSchema),
    preview: z.string().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<PendingConfirmation>, z.ZodTypeDef, unknown>;

const RequestClaimSchema = z
  .object({
    key: z.string(),
    at: z.string(),
    operationId: z.string().optional(),
    outcome: z.string().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<RequestClaim>, z.ZodTypeDef, unknown>;

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 40);

/**
 * Files under `<state>/operations/`: request-id claims (deduplication across restarts), pending
 * confirmations, and per operation its record, progress lines, result and a "reported" marker.
 * Writes are atomic (temp + rename) or appends of whole lines.
 */
export class OperationStore {
  readonly dir: string;
  private readonly requests: string;
  private readonly confirms: string;
  private readonly keeps: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'operations');
    this.requests = join(this.dir, 'requests');
    this.confirms = join(this.dir, 'confirm');
    this.keeps = join(this.dir, 'keep');
    makeDir(this.requests, 0o700);
    makeDir(this.confirms, 0o700);
    makeDir(this.keeps, 0o700);
  }

  /**
   * Claim request keys atomically (O_EXCL): returns null when all were new, else the claim that
   * was there first (a redelivered request).
   */
  claim(keys: string[], at: Date): RequestClaim | null {
    const made: string[] = [];
    for (const key of keys) {
      const path = join(this.requests, `${hash(key)}.json`);
      let fd: number;
      try {
        fd = openSync(path, 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // Give back the keys claimed in this call: the first claim stands for all of them.
        for (const p of made) rmSync(p, { force: true });
        return this.readClaim(path, key, at.toISOString());
      }
      writeSync(fd, JSON.stringify({ key, at: at.toISOString() }));
      closeSync(fd);
      made.push(path);
    }
    return null;
  }

  /** Record what became of a claimed request (operation id or refusal). */
  settle(keys: string[], fields: { operationId?: string; outcome: string }, at: Date): void {
    // No fsync: the claim file itself (written at claim time) is what deduplicates; this only adds
    // what became of it. rename keeps it whole.
    for (const key of keys) {
      const path = join(this.requests, `${hash(key)}.json`);
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ key, at: at.toISOString(), ...fields }), { mode: 0o600 });
      renameSync(tmp, path);
    }
  }

  /**
   * The claim that was there first. Its existence (O_EXCL) is what makes the request a duplicate;
   * its content only says what became of it, so a damaged one is still a claim, with the damage as
   * its outcome (logged by the bus), never a reason to run the request again.
   */
  private readClaim(path: string, key: string, at: string): RequestClaim {
    try {
      return readRecord<RequestClaim>(path, RequestClaimSchema, 'the request claim') ?? { key, at };
    } catch (e) {
      return { key, at, outcome: errorMessage(e) };
    }
  }

  /** Remove request claims and finished operation files older than `days`. */
  prune(now: Date, days = 14): void {
    const cutoff = now.getTime() - days * 86_400_000;
    for (const dir of [this.requests, this.confirms, this.keeps, this.dir]) {
      for (const name of safeList(dir)) {
        const path = join(dir, name);
        try {
          const st = statSync(path);
          if (!st.isFile() || st.mtimeMs > cutoff) continue;
          if (dir === this.dir && name.endsWith('.json') && !name.endsWith('.result.json')) {
            const id = name.slice(0, -'.json'.length);
            if (!this.isReported(id)) continue;
          }
          rmSync(path, { force: true });
        } catch {
          // raced with another cleanup
        }
      }
    }
  }

  // Operations ---------------------------------------------------------------------------------

  private file(id: string, ext: string): string {
    return join(this.dir, `${id}${ext}`);
  }

  save(rec: OperationRecord): void {
    writeJsonAtomic(this.file(rec.id, '.json'), rec, 0o600);
  }

  /** The record, or null when there is none; a damaged one is HvError('state-corrupt') naming it. */
  load(id: string): OperationRecord | null {
    return readRecord<OperationRecord>(this.file(id, '.json'), OperationRecordSchema, 'the operation record');
  }

  /**
   * Every operation whose result was not yet delivered. A damaged record is skipped (it cannot be
   * followed or answered) and handed to `onBroken`, which logs it; the file stays for the admin.
   */
  unreported(onBroken: (message: string) => void = () => {}): OperationRecord[] {
    const out: OperationRecord[] = [];
    for (const name of safeList(this.dir)) {
      if (!name.endsWith('.json') || name.endsWith('.result.json') || name.startsWith('.')) continue;
      const id = name.slice(0, -'.json'.length);
      if (this.isReported(id)) continue;
      try {
        const rec = this.load(id);
        if (rec) out.push(rec);
      } catch (e) {
        if (!isHvError(e) || e.code !== 'state-corrupt') throw e;
        onBroken(e.message);
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  logPath(id: string): string {
    return this.file(id, '.log');
  }

  appendProgress(id: string, line: ProgressLine): void {
    appendFileSync(this.file(id, '.progress'), `${JSON.stringify(line)}\n`, { mode: 0o600 });
  }

  /** Progress lines from byte `offset`; returns the complete lines and the new offset. */
  readProgress(id: string, offset: number): { lines: ProgressLine[]; offset: number } {
    let buf: Buffer;
    try {
      buf = readFileSync(this.file(id, '.progress'));
    } catch {
      return { lines: [], offset };
    }
    const end = buf.lastIndexOf(0x0a) + 1;
    if (end <= offset) return { lines: [], offset };
    const lines: ProgressLine[] = [];
    for (const l of buf.subarray(offset, end).toString('utf8').split('\n')) {
      if (!l) continue;
      // Progress is for display only (the result file carries the outcome): a line that is not a
      // progress line (a torn line cannot happen with whole-line appends) is skipped.
      let raw: unknown;
      try {
        raw = JSON.parse(l);
      } catch {
        continue;
      }
      const line = ProgressLineSchema.safeParse(raw);
      if (line.success) lines.push(line.data as ProgressLine);
    }
    return { lines, offset: end };
  }

  writeResult(id: string, result: CommandResult): void {
    writeJsonAtomic(this.file(id, '.result.json'), result, 0o600);
  }

  /**
   * The operation's result, or null while there is none. A damaged result file becomes an error
   * result naming it, so that the requester is told rather than left waiting.
   */
  readResult(id: string): CommandResult | null {
    try {
      return readRecord<CommandResult>(
        this.file(id, '.result.json'),
        CommandResultSchema,
        'the operation result',
      );
    } catch (e) {
      return {
        status: 'error',
        exitCode: Exit.failed,
        message: `the outcome of this operation is unknown: ${errorMessage(e)}; see ${this.logPath(id)} and the operation log`,
        data: { operationId: id },
      };
    }
  }

  /** The child claimed the operation (it writes `<id>.started` before running anything). */
  wasStarted(id: string): boolean {
    return existsSync(this.file(id, '.started'));
  }

  markReported(id: string, at: Date): void {
    writeJsonAtomic(this.file(id, '.reported'), { at: at.toISOString() }, 0o600);
  }

  isReported(id: string): boolean {
    return existsSync(this.file(id, '.reported'));
  }

  // Confirmations -------------------------------------------------------------------------------

  private confirmFile(token: string): string {
    return join(this.confirms, `${hash(token)}.json`);
  }

  saveConfirmation(c: PendingConfirmation): void {
    writeJsonAtomic(this.confirmFile(c.token), c, 0o600);
  }

  /**
   * The pending confirmation, or null when there is none (unknown, or used). A damaged one is
   * HvError('state-corrupt') naming it: a click must not approve what nobody can read.
   */
  loadConfirmation(token: string): PendingConfirmation | null {
    return readRecord<PendingConfirmation>(
      this.confirmFile(token),
      PendingConfirmationSchema,
      'the pending confirmation',
    );
  }

  // Keep buttons of confirmation windows -----------------------------------------------------------

  saveKeep(k: KeepOffer): void {
    writeJsonAtomic(join(this.keeps, `${hash(k.token)}.json`), k, 0o600);
  }

  loadKeep(token: string): KeepOffer | null {
    try {
      return JSON.parse(readFileSync(join(this.keeps, `${hash(token)}.json`), 'utf8')) as KeepOffer;
    } catch {
      return null;
    }
  }

  /** Consume a confirmation: exactly one caller wins (rename is atomic). */
  takeConfirmation(token: string): boolean {
    try {
      renameSync(this.confirmFile(token), `${this.confirmFile(token)}.used`);
      return true;
    } catch {
      return false;
    }
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Run an accepted operation's command through `execute` with the actor, arguments and confirmation
 * the bus recorded — the one way both the daemon (inline) and the detached child run it. Never
 * throws: a crash becomes an `error` result.
 */
export async function runRecorded(
  cmd: AnyCommand,
  rec: OperationRecord,
  services: Services,
  step: (name: string, detail?: string) => void,
): Promise<CommandResult> {
  try {
    return await execute(cmd, rec.args, {
      config: services.config,
      actor: rec.actor,
      services,
      confirmed: rec.confirmed,
      requestId: rec.requestId,
      progress: { step },
    });
  } catch (e) {
    return { status: 'error', exitCode: Exit.failed, message: errorMessage(e), data: {} };
  }
}
