import type { Actor } from '../audit.js';
import type { HelpEntry } from '../command-options.js';
import type { CommandResult } from '../ports/result.js';

/**
 * Where a request's progress and result go, in a form that survives a daemon restart: the adapter
 * that received it (channel name) plus the adapter's own routing data (Slack channel + thread ts,
 * Discord interaction token + channel id, mail Message-ID + sender).
 */
export interface ReplyAddress {
  channel: string;
  data: Record<string, unknown>;
}

/**
 * A platform's signed proof of a request, checked by the engine (never by the chat process, which
 * does not hold the key): Slack HTTP mode's `X-Slack-Signature` over the raw body (`slack-v0`), a
 * DKIM-signed mail message (`email-dkim`). The engine derives the actor and what was asked from
 * `body` itself and refuses a request whose fields say something else.
 */
export interface Evidence {
  /** Which verifier checks it, e.g. `slack-v0`, `email-dkim`. */
  scheme: string;
  /** The headers the signature covers or needs (lower-case names), e.g. x-slack-signature. */
  headers: Record<string, string>;
  /** The raw body exactly as received (UTF-8 text; mail in its 8-bit form). */
  body: string;
}

/** One command from a front end (chat, email). */
export interface CommandRequest {
  /** Platform request id, the deduplication key: Slack envelope/trigger id, Discord interaction id, Message-ID. */
  id: string;
  /** Command name, e.g. "upgrade-test". */
  command: string;
  /** Remaining words as typed, e.g. ["--to", "42"]. */
  argv: string[];
  actor: Actor;
  replyTo: ReplyAddress;
  /**
   * Further keys that identify the same request (optional): e.g. the Socket Mode envelope id next to
   * the trigger id. The request is a duplicate when any key was seen before.
   */
  dedupeKeys?: string[];
  /** Required for channels whose requests the platform signs (see `Evidence`). */
  evidence?: Evidence;
}

/** A confirmation the front end must show (a button that carries `token`). */
export interface ConfirmationPrompt {
  token: string;
  command: string;
  argv: string[];
  expiresAt: string;
  /** Human text: what will happen, on which host. */
  text: string;
  /** Distinct admins that must still approve (1 = just the requester's own confirmation). */
  approvalsNeeded: number;
}

/** A front end's sink for one request. Every method may be called after a daemon restart. */
export interface Reply {
  /** A long operation moved on (build, activation, health checks). Edits rather than floods. */
  progress(step: string, detail?: string): Promise<void>;
  /** The final outcome. */
  result(result: CommandResult): Promise<void>;
  /** Not authorised, rate-limited, invalid arguments, expired confirmation: a short refusal. */
  refused(reason: string): Promise<void>;
  /** Ask for an explicit confirmation (system-upgrade, rollback). */
  confirm(prompt: ConfirmationPrompt): Promise<void>;
  /**
   * Optional: a confirmation window (dead-man revert) in this request's thread: `open` shows until
   * when and, when a human may confirm, a Keep button carrying `notice.token`; `kept` answers a
   * click; `closed` takes the button away. Front ends without buttons may leave it out.
   */
  window?(notice: WindowNotice): Promise<void>;
  /**
   * Optional: the address as the reply knows it now (e.g. once it created the Slack thread), so
   * that a daemon restart resumes into the same thread. The bus persists it after each call.
   */
  address?(): ReplyAddress;
}

/** A confirmation window as a request's thread shows it (see Reply.window). */
export interface WindowNotice {
  state: 'open' | 'kept' | 'closed';
  windowId: string;
  deadline: string;
  /** Human text: what is open until when, what confirms it; or who kept it, how it ended. */
  text: string;
  /** The Keep button's value (state `open`, when a human may confirm). */
  token?: string;
  /** Who pressed Keep (state `kept`). */
  by?: string;
}

export type SubmitOutcome =
  | { kind: 'accepted'; operationId: string }
  | { kind: 'duplicate'; operationId?: string }
  | { kind: 'needs-confirmation'; prompt: ConfirmationPrompt }
  | { kind: 'awaiting-approval'; approvalsNeeded: number }
  | { kind: 'refused'; reason: string };

/** A command as the bus serves it to front ends (src/command-options.ts derives its options). */
export type ServedCommand = HelpEntry;

/**
 * The command bus: authorises (chatops.roles), deduplicates (request id), rate-limits per actor,
 * audits allowed and denied requests, runs the command and streams progress and the result back.
 * `submit` resolves as soon as the request is accepted or refused, well within a platform's 3 s
 * acknowledgement deadline; the work continues in the background.
 */
export interface CommandBus {
  /**
   * The commands this bus runs for chat and email (every command that is not CLI-only), with their
   * argument schemas: what a front end lists and offers (Discord's option list, help texts).
   */
  commands(): readonly ServedCommand[];
  submit(req: CommandRequest, reply: Reply): Promise<SubmitOutcome>;
  /**
   * A confirm/approve button click (or a reply mail carrying the token). Only an authorised admin's
   * click counts. `evidence`: as for `submit`, where the channel's platform signs requests.
   */
  confirm(token: string, actor: Actor, reply: Reply, evidence?: Evidence): Promise<SubmitOutcome>;
  /**
   * A cancel button click: the requester or an admin may cancel. Optional `reply`: a refused
   * cancel (someone else, unknown or used token) is shown through `reply.refused`, so a front end
   * that passes it must not claim "cancelled" when its refused() was called.
   */
  cancel(token: string, actor: Actor, reply?: Reply, evidence?: Evidence): Promise<void>;
  /**
   * A quick check of a signed request before a front end parses it further (Slack HTTP mode: answer
   * 401 at once). True only when the channel's verifier accepts the evidence. The engine checks
   * again, with the request's fields, on submit/confirm/cancel.
   */
  verify(channel: string, evidence: Evidence): Promise<boolean>;
  /**
   * A Keep button click in a confirmation window's notice: the requester or any admin may keep the
   * activated system (recorded as `human` evidence, audited); anyone else is refused through
   * `reply.refused`. Optional: a bus without confirmation windows has none.
   */
  keep?(token: string, actor: Actor, reply: Reply, evidence?: Evidence): Promise<SubmitOutcome>;
}

/**
 * A chat adapter's way back to a request after a daemon restart: rebuild a Reply from the routing
 * data it put in the ReplyAddress (see CommandIntake.replyFor in src/ports/channel.ts).
 */
export type ReplyFactory = (address: ReplyAddress) => Reply | undefined;

/** What the daemon gives a chat adapter when it starts it. */
export interface AdapterHost {
  bus: CommandBus;
  /**
   * Optional: report each fresh connection to the platform (`detail`: what happened, e.g. "Slack
   * Socket Mode hello"), chat evidence for a confirmation window (src/engine/confirm-window.ts).
   */
  connected?(detail: string): void;
}
