import { type HvEvent, URGENT_EVENTS } from '../events.js';
import { Announcements, factKey } from './announced.js';
import { type Channel, channelName, digestKind, wants } from './channels.js';
import { periodOf } from './digest.js';
import type { DeliveryRecord, OnBroken, Outbox } from './outbox.js';

/** What became of one (event, channel) pair. */
export interface ChannelReport {
  channel: string;
  event: string;
  /**
   * `delivered`; `pending`: failed for now, kept in the outbox and retried with backoff; `failed`:
   * given up (dead) until `hv notify retry`; `held`: gathered for the channel's digest;
   * `skipped-repeat`: this channel already announced the same fact.
   */
  outcome: 'delivered' | 'skipped-repeat' | 'failed' | 'pending' | 'held';
  error?: string;
  deliveryId?: string;
}

/** What enqueueing needs besides the outbox and the channels. */
export interface EnqueueSettings {
  /** `<state>/notify/announced.json`. */
  announcedFile: string;
  /** A fact is announced again on a channel after this many days; null: never. */
  reminderDays: number | null;
  /** The hub's clock (ms since epoch): creation time, digest period, reminder interval. */
  nowMs: number;
  /** Told when a damaged announced.json was moved aside. */
  onBroken?: OnBroken;
}

/**
 * Persist one delivery per (event, channel) that wants it, before any attempt; nothing is sent.
 * A fact the channel announced within `reminderDays` is reported `skipped-repeat`; an event for a
 * digest channel (unless urgent) is `held` until its period ends. Announcements are recorded in
 * the same call, so a second publish of the same fact is a repeat even if the first is still
 * pending. The caller wakes the delivery loop.
 */
export function enqueueEvents(
  outbox: Outbox,
  channels: Channel[],
  events: HvEvent[],
  s: EnqueueSettings,
): ChannelReport[] {
  const { nowMs } = s;
  const nowIso = new Date(nowMs).toISOString();
  // Temp files age by the real clock (their mtime), not the hub's.
  outbox.sweepTemp(Date.now());
  const announced = new Announcements(s.announcedFile, s.reminderDays, s.onBroken);
  const existing = announced.prune(outbox, outbox.all(), nowMs);
  const reports: ChannelReport[] = [];
  for (const ch of channels) {
    // A notice board (motd) shows what is pending; it is sent nothing.
    if (!ch.adapter.deliver) continue;
    const name = channelName(ch);
    const digest = digestKind(ch);
    for (const event of events) {
      if (!wants(ch.config, event)) continue;
      const fact = factKey(event);
      if (announced.isRepeat(existing, name, fact, nowMs)) {
        reports.push({ channel: name, event: event.type, outcome: 'skipped-repeat' });
        continue;
      }
      const hold = digest !== null && !URGENT_EVENTS.has(event.type);
      const period = hold ? periodOf(digest, new Date(nowMs)) : undefined;
      const rec: DeliveryRecord = {
        id: `${event.id}.${name}`,
        channel: name,
        kind: 'event',
        state: hold ? 'held' : 'pending',
        events: [event],
        createdAt: nowIso,
        seq: reports.length,
        attempts: 0,
        nextAt: period ? period.endsAt : nowIso,
        ...(period ? { digest: period } : {}),
      };
      outbox.put(rec);
      existing.push(rec);
      announced.record(name, fact, nowIso);
      reports.push({
        channel: name,
        event: event.type,
        outcome: hold ? 'held' : 'pending',
        deliveryId: rec.id,
      });
    }
  }
  announced.save();
  return reports;
}

/** A report brought up to date with its delivery record as it is now (after a drain). */
export function settledReport(report: ChannelReport, rec: DeliveryRecord | null): ChannelReport {
  if (!rec) return report;
  const outcome =
    rec.state === 'done'
      ? 'delivered'
      : rec.state === 'dead'
        ? 'failed'
        : rec.state === 'held'
          ? 'held'
          : 'pending';
  return {
    ...report,
    outcome,
    ...(rec.lastError && outcome !== 'delivered' ? { error: rec.lastError } : {}),
  };
}
