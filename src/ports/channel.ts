/**
 * The channel port: what the core needs from a notification or chat channel, and what it gives one.
 * Adapters (adapters/) implement it; the composition roots hand the core a `ChannelTypes` registry.
 */
import type { z } from 'zod';
import type { Actor } from '../audit.js';
import type { AdapterHost, Evidence, Reply, ReplyAddress } from '../bus/types.js';
import type { ChannelSettings } from '../config/fields.js';
import type { Config } from '../config/schema.js';
import type { HvEvent } from '../events.js';
import type { Runner } from '../proc.js';

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

/** Capability: sends events (the hub's outbox retries what throws a DeliveryError). */
export interface Notifier {
  /** Send one event. Throw DeliveryError to have the hub retry. */
  deliver(event: HvEvent, delivery: Delivery): Promise<void>;
  /** Send several events as one message (email digests). */
  sendDigest?(events: HvEvent[], delivery: Delivery): Promise<void>;
}

/** Capability: a persistent notice (the motd file) kept in line with what is pending. */
export interface NoticeBoard {
  reconcile(pending: PendingNotice | null): Promise<void>;
}

/** Capability: takes commands (chat); the daemon starts it with the command bus. */
export interface CommandIntake {
  start(host: AdapterHost): Promise<void>;
  stop?(): Promise<void>;
  /**
   * A Reply for a ReplyAddress this adapter made, so that the command bus can deliver an
   * operation's result after a daemon restart (undefined: not this adapter's address).
   */
  replyFor?(address: ReplyAddress): Reply | undefined;
  /**
   * Drop the platform connection and establish a new one (a confirmation window opened after an
   * activation), reporting it through `AdapterHost.connected` once it is up; keeps trying until it
   * is or the adapter stops. A channel without a persistent connection makes an authenticated call
   * instead (Slack HTTP mode: auth.test). Resolves when the attempt started, not when it succeeded.
   */
  reconnect?(): Promise<void>;
}

/**
 * A channel as the core sees it: any of a notifier (email, chat, wall), a notice board (motd) and a
 * command intake (chat), each an optional capability. Like bolt-js receivers: thin, one job each.
 */
export interface ChannelAdapter extends Partial<Notifier>, Partial<NoticeBoard>, Partial<CommandIntake> {
  readonly name: string;
  readonly type: string;
  /**
   * Another process delivers this channel (an operation the daemon started leaves chat deliveries
   * to the daemon's chat process): its deliveries are queued here, never attempted.
   */
  readonly deferred?: boolean;
}

/** Makes a channel's adapter from its parsed, typed config entry (`A`: the capabilities it has). */
export interface ChannelFactory<C, A extends ChannelAdapter = ChannelAdapter> {
  readonly type: string;
  create(channel: C, ctx: AdapterContext): A | Promise<A>;
}

/**
 * What a verifier proved from a request's `Evidence`: who sent it and what they asked. The bus
 * refuses a request whose own fields disagree with any field given here.
 */
export interface ProvenRequest {
  actor: Actor;
  /** The platform's request id (Slack trigger id, Message-ID). */
  requestId?: string;
  command?: string;
  argv?: string[];
  /** A confirmation token the signed request carries (a button's value, a `[hv:…]` Subject tag). */
  token?: string;
  /** For a button click: which button. */
  action?: 'confirm' | 'cancel' | 'keep';
}

/** Checks a channel's `Evidence` in the engine; throws an Error whose message is the reason. */
export type EvidenceVerifier = (
  channel: ChannelSettings,
  evidence: Evidence,
  ctx: { readSecret(path: string): string; now: () => Date },
) => Promise<ProvenRequest>;

/**
 * Where a channel's parts run under privilege separation: `intake` (taking commands: a network
 * listener or platform connection) always runs in the unprivileged chat process; `notifier` runs in
 * the engine ("engine": SMTP, wall) or goes through the chat process ("chat": it needs the chat
 * platform's token).
 */
export interface Placement {
  intake: boolean;
  notifier: 'engine' | 'chat' | 'none';
}

/**
 * One channel type: its config schema (zod only, loaded at start) and its adapter (loaded lazily,
 * only when a channel of this type is configured, so `hv status` never loads a platform library).
 */
export interface ChannelType {
  readonly type: string;
  readonly schema: z.ZodType<ChannelSettings, z.ZodTypeDef, unknown>;
  /** Load the adapter and make it from a config entry that passed `schema`. */
  open(channel: ChannelSettings, ctx: AdapterContext): Promise<ChannelAdapter>;
  /** Where its parts run (default: all in the engine, no intake). */
  placement(channel: ChannelSettings): Placement;
  /**
   * Requests through this channel must carry `Evidence` the engine verifies (e.g. Slack HTTP mode);
   * undefined: the channel's platform does not sign requests.
   */
  requiresEvidence(channel: ChannelSettings): boolean;
  /** The engine's check of `Evidence` (loaded lazily); undefined when the type has none. */
  verifier?(): Promise<EvidenceVerifier>;
  /**
   * Secret-file keys the chat process must never receive (e.g. Slack's signing secret: only the
   * engine verifies signatures). Every other `…File` key of a chat-placed channel is handed over.
   */
  readonly engineSecrets: readonly string[];
}

export type { ChannelSettings };

/** Every channel type, by `type`; built by adapters/registry.ts and passed in by the composition roots. */
export type ChannelTypes = ReadonlyMap<string, ChannelType>;

/**
 * A channel type from its schema and a lazy loader of its factory. The factory gets the entry as
 * its schema's output type: parsed again here (cheap, the schemas have no side effects), so no
 * adapter casts its config.
 */
export function defineChannel<S extends z.ZodType<ChannelSettings, z.ZodTypeDef, unknown>>(def: {
  type: string;
  schema: S;
  load: () => Promise<ChannelFactory<z.output<S>>>;
  placement?: (channel: z.output<S>) => Placement;
  requiresEvidence?: (channel: z.output<S>) => boolean;
  verifier?: () => Promise<EvidenceVerifier>;
  engineSecrets?: readonly string[];
}): ChannelType {
  const typed = (channel: ChannelSettings) => def.schema.parse(channel);
  return {
    type: def.type,
    schema: def.schema,
    async open(channel, ctx) {
      const factory = await def.load();
      return factory.create(typed(channel), ctx);
    },
    placement: (channel) => def.placement?.(typed(channel)) ?? { intake: false, notifier: 'engine' },
    requiresEvidence: (channel) => def.requiresEvidence?.(typed(channel)) ?? false,
    ...(def.verifier ? { verifier: def.verifier } : {}),
    engineSecrets: def.engineSecrets ?? [],
  };
}
