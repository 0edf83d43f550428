import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { makeDir, writeJsonAtomic } from '../fs/atomic.js';
import type { ProcessIdentity } from '../process-identity.js';
import type { StatePaths } from '../state.js';
import { readRecord, type Stored } from '../state.js';

/**
 * The dead-man confirmation window (SPEC "Engine rules", issue 16): after an activation, evidence
 * from outside the host must arrive before a deadline or the activation is undone. This module is
 * the persisted contract between the processes involved:
 *
 * - the operation that activated writes the window (`openWindow`) and waits for evidence;
 * - anyone who holds evidence records it (`recordEvidence`): the daemon for chat reconnections and
 *   the chat "Keep" button, `hv confirm` for a human on the host, the waiter itself for probes;
 * - after a crash or reboot, recovery finds a window whose owner is gone and reverts it.
 *
 * Files: `<state>/confirm-window.json` (one window at a time: operations hold the host lock) and
 * `<state>/confirm-evidence/<window id>.<kind>[.<channel>].json`.
 */

export type EvidenceKind = 'chat' | 'probes' | 'human';
export const EVIDENCE_KINDS: readonly EvidenceKind[] = ['chat', 'probes', 'human'];

export interface ConfirmWindow extends ProcessIdentity {
  /** Random id: evidence names the window it confirms, so late evidence cannot confirm the next one. */
  id: string;
  operation: 'upgrade-test' | 'system-upgrade' | 'rollback';
  /** The chat request that started the operation, if any (its thread gets the Keep button). */
  requestId?: string;
  /** Who started it (actor label), for the audit and the Keep button's rule. */
  requester: string;
  openedAt: string;
  deadline: string;
  /** `apply.confirm`: any one of these kinds confirms. */
  wants: EvidenceKind[];
  /** For `chat`: every chat channel that must reconnect after `openedAt` (config names). */
  chatChannels: string[];
  /** The system that was activated, and what a revert goes back to. */
  activated: string;
  previousSystem: string;
  previousGeneration?: number;
}

export interface EvidenceRecord {
  window: string;
  kind: EvidenceKind;
  at: string;
  /** For `chat`: the channel that reconnected. */
  channel?: string;
  /** What happened, in words: "Slack Socket Mode hello", "Keep pressed by slack:U1", probe output. */
  detail: string;
  by?: string;
}

const Kind = z.enum(['chat', 'probes', 'human']);

const WindowSchema = z
  .object({
    pid: z.number().int(),
    bootId: z.string().optional(),
    startTime: z.number().optional(),
    id: z.string().min(1),
    operation: z.enum(['upgrade-test', 'system-upgrade', 'rollback']),
    requestId: z.string().optional(),
    requester: z.string(),
    openedAt: z.string(),
    deadline: z.string(),
    wants: z.array(Kind),
    chatChannels: z.array(z.string()),
    activated: z.string(),
    previousSystem: z.string(),
    previousGeneration: z.number().int().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<ConfirmWindow>, z.ZodTypeDef, unknown>;

const EvidenceSchema = z
  .object({
    window: z.string(),
    kind: Kind,
    at: z.string(),
    channel: z.string().optional(),
    detail: z.string(),
    by: z.string().optional(),
  })
  .passthrough() satisfies z.ZodType<Stored<EvidenceRecord>, z.ZodTypeDef, unknown>;

export function windowFile(paths: StatePaths): string {
  return join(paths.dir, 'confirm-window.json');
}

export function evidenceDir(paths: StatePaths): string {
  return join(paths.dir, 'confirm-evidence');
}

/** The open window, or null. A corrupt file is HvError('state-corrupt') naming it. */
export function readWindow(paths: StatePaths): ConfirmWindow | null {
  return readRecord<ConfirmWindow>(windowFile(paths), WindowSchema, 'the confirmation window');
}

/** Persist a window before waiting (the deadline must survive a crash or reboot). */
export function openWindow(paths: StatePaths, w: ConfirmWindow): void {
  makeDir(evidenceDir(paths));
  writeJsonAtomic(windowFile(paths), w);
}

/** Remove the window and its evidence (confirmed, or reverted and recorded). */
export function closeWindow(paths: StatePaths, w: Pick<ConfirmWindow, 'id'>): void {
  rmSync(windowFile(paths), { force: true });
  let names: string[] = [];
  try {
    names = readdirSync(evidenceDir(paths));
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(`${w.id}.`)) rmSync(join(evidenceDir(paths), n), { force: true });
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * Record evidence for the open window. Returns the window it was recorded for, or null when no
 * window is open (or `window` names another one: late evidence confirms nothing).
 */
export function recordEvidence(
  paths: StatePaths,
  e: Omit<EvidenceRecord, 'window'> & { window?: string },
): ConfirmWindow | null {
  const w = readWindow(paths);
  if (!w || (e.window !== undefined && e.window !== w.id)) return null;
  makeDir(evidenceDir(paths));
  const name = `${w.id}.${e.kind}${e.channel ? `.${safe(e.channel)}` : ''}.json`;
  writeJsonAtomic(join(evidenceDir(paths), name), { ...e, window: w.id } satisfies EvidenceRecord);
  return w;
}

/** Evidence recorded for window `w` (unreadable files are skipped: evidence is only ever added). */
export function readEvidence(paths: StatePaths, w: Pick<ConfirmWindow, 'id'>): EvidenceRecord[] {
  let names: string[] = [];
  try {
    names = readdirSync(evidenceDir(paths));
  } catch {
    return [];
  }
  const out: EvidenceRecord[] = [];
  for (const n of names.filter((n) => n.startsWith(`${w.id}.`)).sort()) {
    try {
      const r = readRecord<EvidenceRecord>(
        join(evidenceDir(paths), n),
        EvidenceSchema,
        'confirmation evidence',
      );
      if (r && r.window === w.id) out.push(r);
    } catch {
      // A half-written or foreign file is not evidence.
    }
  }
  return out;
}

/**
 * Whether the evidence confirms the window: any wanted kind complete. `chat` is complete when every
 * channel in `chatChannels` reconnected after `openedAt`; `probes` and `human` by one record.
 * Returns what confirmed it, e.g. "confirmed by chat reconnection (slack, discord)".
 */
export function confirmedBy(w: ConfirmWindow, evidence: readonly EvidenceRecord[]): string | undefined {
  const opened = Date.parse(w.openedAt);
  const fresh = evidence.filter((e) => Date.parse(e.at) >= opened);
  for (const kind of w.wants) {
    const of = fresh.filter((e) => e.kind === kind);
    if (kind === 'chat') {
      if (!w.chatChannels.length) continue;
      const seen = new Set(of.map((e) => e.channel));
      if (w.chatChannels.every((c) => seen.has(c)))
        return `confirmed by chat reconnection (${w.chatChannels.join(', ')})`;
    } else if (of.length) {
      const e = of[0] as EvidenceRecord;
      return kind === 'human'
        ? `confirmed by ${e.by ?? 'a human'} (${e.detail})`
        : `confirmed by reachability probes (${e.detail})`;
    }
  }
  return undefined;
}

/** What was missing when the deadline passed, for `not confirmed within N s: <this>`. */
export function missingEvidence(w: ConfirmWindow, evidence: readonly EvidenceRecord[]): string {
  const seen = new Set(evidence.filter((e) => e.kind === 'chat').map((e) => e.channel));
  const parts = w.wants.map((kind) => {
    if (kind === 'chat') {
      const missing = w.chatChannels.filter((c) => !seen.has(c));
      return `no chat reconnection from ${missing.join(', ') || '(no chat channel configured)'}`;
    }
    if (kind === 'probes') return 'the reachability probes did not pass';
    return `nobody pressed Keep or ran "hv confirm"`;
  });
  return parts.join('; ');
}

/**
 * Who asked for the operation that opens a window, as the command layer knows it: the requester
 * (actor label), the chat request (its thread gets the Keep button) and the chat channels that must
 * reconnect for `chat` evidence (src/config/fields.ts reconnectingChannels).
 */
export interface ConfirmOrigin {
  requester: string;
  requestId?: string;
  chatChannels: string[];
}
