/** Every event the notification hub knows (SPEC "Notifications"). */
export const EVENT_TYPES = [
  'update.available',
  'release.available',
  'check.failed',
  'test.passed',
  'test.failed',
  'upgrade.applied',
  'upgrade.failed',
  'rollback.done',
  /** `hv notify test`: sent on request, whatever a channel's `events` filter says. */
  'notify.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Events that must never wait for a digest. */
export const URGENT_EVENTS: ReadonlySet<EventType> = new Set([
  'check.failed',
  'test.failed',
  'upgrade.failed',
]);

/**
 * One thing that happened on a host. `key` identifies the fact (e.g. the upstream rev of an update),
 * so that the same fact announced twice is recognised as a repeat.
 */
export interface HvEvent {
  id: string;
  type: EventType;
  host: string;
  at: string;
  key: string;
  /** A one-line human summary, e.g. "NixOS update available: nixos-24.05 2024-09-03". */
  title: string;
  /** Facts for templates; plain JSON. */
  data: Record<string, unknown>;
  /** The command an admin should run next, if any. */
  next?: string;
  /** A file with the full details, for messages that must be truncated. */
  detailsFile?: string;
}
