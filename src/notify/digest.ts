import type { HvEvent } from '../events.js';
import type { DeliveryRecord, Outbox } from './outbox.js';

/** Digest periods in the host's local time: a day, an ISO week (Monday first), a calendar month. */
export type DigestKind = 'daily' | 'weekly' | 'monthly';

export interface Period {
  kind: DigestKind;
  /** Stable key, part of the digest's delivery id: `2024-09-03`, `2024-W36`, `2024-09`. */
  period: string;
  /** For people: `2024-09-03`, `week of 2024-09-02`, `2024-09`. */
  label: string;
  /** When the period ends and its digest is due (ISO). */
  endsAt: string;
}

const pad = (n: number) => String(n).padStart(2, '0');
const ymd = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/** The period `at` falls in. */
export function periodOf(kind: DigestKind, at: Date): Period {
  const y = at.getFullYear();
  const m = at.getMonth();
  const d = at.getDate();
  if (kind === 'daily') {
    return { kind, period: ymd(at), label: ymd(at), endsAt: new Date(y, m, d + 1).toISOString() };
  }
  if (kind === 'monthly') {
    const key = `${y}-${pad(m + 1)}`;
    return { kind, period: key, label: key, endsAt: new Date(y, m + 1, 1).toISOString() };
  }
  const sinceMonday = (at.getDay() + 6) % 7;
  const monday = new Date(y, m, d - sinceMonday);
  // ISO week number: the week with the year's first Thursday is week 1.
  const thursday = new Date(monday.getFullYear(), monday.getMonth(), monday.getDate() + 3);
  const jan1 = new Date(thursday.getFullYear(), 0, 1);
  const days = Math.round((thursday.getTime() - jan1.getTime()) / 86_400_000);
  const week = 1 + Math.floor(days / 7);
  return {
    kind,
    period: `${thursday.getFullYear()}-W${pad(week)}`,
    label: `week of ${ymd(monday)}`,
    endsAt: new Date(monday.getFullYear(), monday.getMonth(), monday.getDate() + 7).toISOString(),
  };
}

/**
 * Turn a channel's held events whose digest period has ended into one digest delivery per period.
 * Idempotent: the digest id is derived from channel and period, so a crash between writing the
 * digest and removing the held events only leaves a clean-up for the next pass.
 */
export function closeDigests(outbox: Outbox, channel: string, nowMs: number): void {
  const held = outbox
    .all()
    .filter((r) => r.channel === channel && r.state === 'held' && Date.parse(r.nextAt) <= nowMs);
  if (!held.length) return;
  const release = outbox.claim(`digest-close.${channel}`, 60_000);
  if (!release) return;
  const byTime = (a: HvEvent, b: HvEvent) => a.at.localeCompare(b.at);
  try {
    const groups = new Map<string, DeliveryRecord[]>();
    for (const r of held) {
      const key = r.digest?.period ?? 'unknown';
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    for (const [period, items] of groups) {
      const events = items.flatMap((r) => r.events).sort(byTime);
      let id = `digest.${channel}.${period}`;
      let digest = outbox.get(id);
      const fresh = events.filter((e) => !digest?.events.some((x) => x.id === e.id));
      if (fresh.length) {
        if (digest && digest.state !== 'done' && digest.attempts === 0) {
          digest.events = [...digest.events, ...fresh].sort(byTime);
        } else {
          // Late events of a period already sent (clock set back): a digest of their own.
          if (digest) id = `${id}.${nowMs}`;
          const nowIso = new Date(nowMs).toISOString();
          digest = {
            id,
            channel,
            kind: 'digest',
            state: 'pending',
            events: fresh,
            createdAt: nowIso,
            attempts: 0,
            nextAt: nowIso,
            ...(items[0]?.digest ? { digest: items[0].digest } : {}),
          };
        }
        outbox.put(digest);
      }
      for (const r of items) outbox.remove(r.id);
    }
  } finally {
    release();
  }
}
