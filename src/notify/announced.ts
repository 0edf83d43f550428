import { z } from 'zod';
import { isHvError } from '../errors.js';
import type { HvEvent } from '../events.js';
import { readRecord, writeJsonAtomic } from '../state.js';
import { type DeliveryRecord, moveAside, type OnBroken, type Outbox } from './outbox.js';

/** channel → fact → when it was last announced (ISO time). */
type Announced = Record<string, Record<string, string>>;
const AnnouncedSchema = z.record(z.record(z.string())) satisfies z.ZodType<Announced, z.ZodTypeDef, unknown>;

/** The fact an event states: the same type and key on the same channel is a repeat. */
export const factKey = (e: HvEvent) => `${e.type}:${e.key}`;

/** Completed deliveries are kept a week (no resend after a restart); announced.json remembers longer. */
const DONE_KEPT_MS = 7 * 86_400_000;

/**
 * What each channel has announced and when (`<state>/notify/announced.json`): the memory behind
 * "a notification for the same update is not repeated; a reminder may be, after reminderDays".
 */
export class Announcements {
  private data: Record<string, Record<string, string>>;
  private changed = false;

  /**
   * A damaged announced.json is moved aside (`onBroken` is told; `hv status` lists it) and hv
   * starts a fresh one: at worst a fact is announced once more, where refusing would lose every
   * notification from then on (including those of an upgrade that was just applied).
   */
  constructor(
    private readonly file: string,
    private readonly reminderDays: number | null,
    onBroken?: OnBroken,
  ) {
    let data: Announced | null = null;
    try {
      data = readRecord<Announced>(file, AnnouncedSchema, 'the record of sent notifications');
    } catch (e) {
      if (!isHvError(e) || e.code !== 'state-corrupt') throw e;
      onBroken?.(e.message, moveAside(file));
    }
    this.data = data ?? {};
  }

  /**
   * Announced within the reminder interval, by announced.json or by a delivery record still in the
   * outbox (written just before a crash kept announced.json from being updated).
   */
  isRepeat(existing: DeliveryRecord[], channel: string, fact: string, nowMs: number): boolean {
    const days = this.reminderDays;
    const recent = (iso: string) => days === null || nowMs - Date.parse(iso) < days * 86_400_000;
    const at = this.data[channel]?.[fact];
    if (at && recent(at)) return true;
    return existing.some(
      (r) => r.channel === channel && recent(r.createdAt) && r.events.some((e) => factKey(e) === fact),
    );
  }

  record(channel: string, fact: string, iso: string, onlyIfMissing = false): void {
    const seen = this.data[channel] ?? {};
    this.data[channel] = seen;
    if (onlyIfMissing && seen[fact]) return;
    seen[fact] = iso;
    this.changed = true;
  }

  save(): void {
    if (this.changed) writeJsonAtomic(this.file, this.data, 0o600);
    this.changed = false;
  }

  /** Forget completed deliveries after a week; what they announced stays remembered here. */
  prune(outbox: Outbox, existing: DeliveryRecord[], nowMs: number): DeliveryRecord[] {
    const old = (r: DeliveryRecord) =>
      r.state === 'done' && nowMs - Date.parse(r.doneAt ?? r.createdAt) >= DONE_KEPT_MS;
    const gone = existing.filter(old);
    if (!gone.length) return existing;
    for (const r of gone) for (const e of r.events) this.record(r.channel, factKey(e), r.createdAt, true);
    this.save();
    for (const r of gone) outbox.remove(r.id);
    return existing.filter((r) => !old(r));
  }
}
