import type { Actor } from '../src/audit.js';
import type { Reply, ReplyAddress } from '../src/bus/types.js';
import type { Config } from '../src/config/schema.js';
import type { HvEvent } from '../src/events.js';
import type { Runner } from '../src/proc.js';
import type { ChannelConfig } from './schemas.js';

/** What the local notices show while an update is pending (null: nothing pending). */
export interface PendingNotice {
  host: string;
  input: string;
  branch: string | undefined;
  current: { rev: string | undefined; date: string | undefined };
  available: { rev: string | undefined; date: string | undefined };
  releases: string[];
  next: string;
  detailsFile: string;
  /** Why it is pending when not only because upstream moved (e.g. the live flake.lock is not what runs). */
  reason?: string;
  /** False when only a newer release is pending (the tracked branch is up to date). */
  updateAvailable?: boolean;
  /** The next newer release and the command that tests a move to it. */
  release?: { branch: string; next: string };
}

/** A failed delivery attempt; `retryAfterMs` honours a platform's rate limit. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    /** A failure no retry will fix (bad address, bad token). */
    readonly permanent = false,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/** Everything an adapter may use; no Nix, no engine. */
export interface AdapterContext {
  config: Config;
  runner: Runner;
  now: () => Date;
  /** Read a secret from a file named in the config; never log the value. */
  readSecret(path: string): string;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** One delivery of one event to one channel; `id` is the idempotency key. */
export interface Delivery {
  id: string;
  attempt: number;
}

/**
 * A notification channel. Only `deliver` is required; the rest are optional capabilities.
 * Like bolt-js receivers: thin, one job each.
 */
export interface ChannelAdapter {
  readonly name: string;
  readonly type: string;
  /** Send one event. Throw DeliveryError to have the hub retry. */
  deliver(event: HvEvent, delivery: Delivery): Promise<void>;
  /** Bring a persistent view (the motd file) in line with what is pending. */
  reconcile?(pending: PendingNotice | null): Promise<void>;
  /** Send several events as one message (email digests). */
  sendDigest?(events: HvEvent[], delivery: Delivery): Promise<void>;
  /** Start intake (chat) or connections; called by the daemon. */
  start?(intake: unknown): Promise<void>;
  stop?(): Promise<void>;
  /**
   * Chat adapters: a Reply for a ReplyAddress this adapter made, so that the command bus can
   * deliver an operation's result after a daemon restart (undefined: not this adapter's address).
   */
  replyFor?(address: ReplyAddress): Reply | undefined;
}

export interface AdapterFactory {
  readonly type: string;
  create(channel: ChannelConfig, ctx: AdapterContext): ChannelAdapter | Promise<ChannelAdapter>;
}

export type { Actor };
