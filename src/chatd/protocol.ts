/**
 * The messages between the root engine and the unprivileged chat process (SPEC "Chat and email
 * commands": privilege separation). One JSON object a line; every message is validated by these
 * schemas on both sides, and nothing else is accepted. A reply to a request carries its `call`
 * number. The same messages can travel over another transport (see transport.ts).
 */
import { z } from 'zod';

/** The longest line either side accepts (a Slack body is far below 100 KB; a mail up to 1 MB). */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;
export const PROTOCOL_VERSION = 1;

const Id = z.string().min(1).max(200);
const Text = z.string().max(64 * 1024);
const Call = z.number().int().nonnegative();
const Json = z.record(z.unknown());

const Actor = z.strictObject({
  channel: z.string().min(1).max(32),
  id: z.string().min(1).max(320),
  display: z.string().max(200).optional(),
  groups: z.array(z.string().min(1).max(200)).max(100).optional(),
});

const ReplyAddress = z.strictObject({ channel: z.string().min(1).max(100), data: Json });

const Evidence = z.strictObject({
  scheme: z.string().min(1).max(32),
  headers: z.record(z.string().max(1024)),
  body: z.string().max(MAX_LINE_BYTES),
});

const CommandRequest = z.strictObject({
  id: Id,
  command: z.string().max(64),
  argv: z.array(z.string().max(512)).max(32),
  actor: Actor,
  replyTo: ReplyAddress,
  dedupeKeys: z.array(Id).max(8).optional(),
  evidence: Evidence.optional(),
});

const ResultStatus = z.string().min(1).max(32);
const CommandResult = z.strictObject({
  status: ResultStatus,
  exitCode: z.number().int(),
  message: Text,
  data: Json,
  audit: Json.optional(),
});

const ConfirmationPrompt = z.strictObject({
  token: z.string().min(1).max(200),
  command: z.string().max(64),
  argv: z.array(z.string().max(512)).max(32),
  expiresAt: z.string().max(64),
  text: Text,
  approvalsNeeded: z.number().int(),
});

const SubmitOutcome = z.union([
  z.strictObject({ kind: z.literal('accepted'), operationId: z.string() }),
  z.strictObject({ kind: z.literal('duplicate'), operationId: z.string().optional() }),
  z.strictObject({ kind: z.literal('needs-confirmation'), prompt: ConfirmationPrompt }),
  z.strictObject({ kind: z.literal('awaiting-approval'), approvalsNeeded: z.number().int() }),
  z.strictObject({ kind: z.literal('refused'), reason: Text }),
]);

/** A confirmation window's notice in a request's thread (src/bus/types.ts WindowNotice). */
const WindowNotice = z.strictObject({
  state: z.enum(['open', 'kept', 'closed']),
  windowId: z.string().min(1).max(100),
  deadline: z.string().max(64),
  text: Text,
  token: z.string().min(1).max(200).optional(),
  by: z.string().max(400).optional(),
});

/** A reply address, its Reply method and that method's argument, as the engine calls it. */
const ReplyCall = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('progress'), step: Text, detail: Text.optional() }),
  z.strictObject({ method: z.literal('result'), result: CommandResult }),
  z.strictObject({ method: z.literal('refused'), reason: Text }),
  z.strictObject({ method: z.literal('confirm'), prompt: ConfirmationPrompt }),
  z.strictObject({ method: z.literal('window'), notice: WindowNotice }),
]);
export type ReplyCall = z.infer<typeof ReplyCall>;

const HvEvent = z
  .object({
    id: z.string(),
    type: z.string(),
    host: z.string(),
    at: z.string(),
    key: z.string(),
    title: z.string(),
    data: Json,
  })
  .passthrough();

const Delivery = z.strictObject({ id: Id, attempt: z.number().int().min(1) });

/** Chat process → engine. */
export const ChatMessage = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('hello'), v: z.literal(PROTOCOL_VERSION), pid: z.number().int() }),
  z.strictObject({ t: z.literal('submit'), call: Call, replyId: Id, request: CommandRequest }),
  z.strictObject({
    t: z.literal('confirm'),
    call: Call,
    replyId: Id,
    token: z.string().min(1).max(200),
    actor: Actor,
    replyTo: ReplyAddress,
    evidence: Evidence.optional(),
  }),
  z.strictObject({
    t: z.literal('cancel'),
    call: Call,
    replyId: Id,
    token: z.string().min(1).max(200),
    actor: Actor,
    replyTo: ReplyAddress,
    evidence: Evidence.optional(),
  }),
  /** A Keep button click in a confirmation window's notice (answered with `outcome`). */
  z.strictObject({
    t: z.literal('keep'),
    call: Call,
    replyId: Id,
    token: z.string().min(1).max(200),
    actor: Actor,
    replyTo: ReplyAddress,
    evidence: Evidence.optional(),
  }),
  z.strictObject({ t: z.literal('verify'), call: Call, channel: z.string().max(100), evidence: Evidence }),
  /**
   * A fresh connection of a channel to its platform (Slack Socket Mode hello, Discord READY or
   * RESUMED, Slack HTTP mode's authenticated API call): chat evidence for a confirmation window.
   */
  z.strictObject({
    t: z.literal('connected'),
    channel: z.string().min(1).max(100),
    at: z.string().max(64),
    detail: z.string().max(500),
  }),
  /** The answer to the engine's `reply`: done, the reply's address now, or why it failed. */
  z.strictObject({
    t: z.literal('reply-done'),
    call: Call,
    ok: z.boolean(),
    address: ReplyAddress.optional(),
    error: Text.optional(),
  }),
  /** The answer to the engine's `deliver`. */
  z.strictObject({
    t: z.literal('delivered'),
    call: Call,
    ok: z.boolean(),
    error: z
      .strictObject({ message: Text, retryAfterMs: z.number().optional(), permanent: z.boolean() })
      .optional(),
  }),
]);
export type ChatMessage = z.infer<typeof ChatMessage>;

/** The chat process's channel entries and their secrets, as the engine hands them over. */
const ChatChannel = z.strictObject({
  settings: Json,
  intake: z.boolean(),
  notifier: z.boolean(),
});

/** Engine → chat process. */
export const EngineMessage = z.discriminatedUnion('t', [
  z.strictObject({
    t: z.literal('welcome'),
    v: z.literal(PROTOCOL_VERSION),
    /** The whole config (it holds no secrets: only paths to them), parsed again by the chat process. */
    config: Json,
    channels: z.array(ChatChannel).max(64),
    /** Secret values by the path the config names (empty when systemd's LoadCredential supplies them). */
    secrets: z.record(z.string().max(64 * 1024)),
  }),
  z.strictObject({
    t: z.literal('outcome'),
    call: Call,
    outcome: SubmitOutcome.optional(),
    error: Text.optional(),
  }),
  z.strictObject({ t: z.literal('verified'), call: Call, ok: z.boolean() }),
  z.strictObject({
    t: z.literal('reply'),
    call: Call,
    /** The chat process's handle for a live request (from submit/confirm/cancel), if it still has it. */
    replyId: Id.optional(),
    address: ReplyAddress,
    do: ReplyCall,
  }),
  /**
   * A confirmation window opened: drop and re-establish every platform connection, and report each
   * fresh one (`connected`), so that only a connection made after the activation counts.
   */
  z.strictObject({ t: z.literal('reconnect'), window: z.string().min(1).max(100) }),
  z.strictObject({
    t: z.literal('deliver'),
    call: Call,
    channel: z.string().max(100),
    events: z.array(HvEvent).min(1).max(500),
    digest: z.boolean(),
    delivery: Delivery,
  }),
]);
export type EngineMessage = z.infer<typeof EngineMessage>;

/** Parse one line as `schema`; a string is the reason it was refused. */
export function decode<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, line: string): T | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  return `invalid message: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`;
}
