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
