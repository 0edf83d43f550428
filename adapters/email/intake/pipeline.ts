import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RateLimiter } from '../../../src/bus/rate-limit.js';
import type { CommandBus, Reply, SubmitOutcome } from '../../../src/bus/types.js';
import { writeFileAtomic } from '../../../src/fs/atomic.js';
import type { EmailIntake } from '../schema.js';
import { headerBlock, headerFields } from './headers.js';
import type { MailReplyData } from './reply.js';
import { INTAKE_REFUSED, judge, mailToEvidence } from './verify.js';

/** Unauthenticated messages handed to the engine (for its audit record) a minute; past that, only logged. */
const UNAUTHENTICATED_PER_MINUTE = 60;
/** How long a message whose DKIM key or DMARC record could not be looked up (DNS down) is retried. */
const TEMPORARY_RETRY_MS = 30 * 60_000;

/** Thrown for a message worth retrying later (DNS trouble): its source keeps it queued. */
export class TryLater extends Error {}

/** What the pipeline needs from the chat process. */
export interface PipelineDeps {
  bus: CommandBus;
  intake: EmailIntake;
  /** The email channel's name (the bus finds the channel's verifier by it). */
  channel: string;
  /** The chat process's own dir for the Message-IDs already handled (`<chatops.stateDir>/email`). */
  stateDir: string;
  /** A reply in the request's thread; `silent` ones answer nothing. */
  replyFor(data: MailReplyData): Reply;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  now: () => Date;
}

/** How one message was handled (for logs and tests). */
export type Handled =
  | { decision: 'submitted' | 'confirmed'; outcome: string }
  | { decision: 'duplicate' }
  | { decision: 'refused'; reason: string };

/**
 * The intake pipeline: every message, whichever way it came (spool, IMAP), goes through here once.
 * The chat process decides only whether to answer: the engine checks the same bytes again and alone
 * decides who sent them. Every message reaches the engine, which audits it (sender, authentication
 * result, command, decision): an unauthenticated one with the reason its verifier refused it.
 */
export function createPipeline(deps: PipelineDeps): (raw: Buffer) => Promise<Handled> {
  const perSender = new RateLimiter(deps.intake.ratePerMinute, deps.now);
  const unauthenticated = new RateLimiter(UNAUTHENTICATED_PER_MINUTE, deps.now);
  const seenDir = join(deps.stateDir, 'seen');
  const firstTried = new Map<string, number>();
  const seenPath = (messageId: string) =>
    join(seenDir, `${createHash('sha256').update(messageId).digest('hex').slice(0, 40)}`);
  const silent = (messageId: string, sender = '') =>
    deps.replyFor({ messageId, sender, subject: '', references: [], silent: true });

  /** Hand a refused message to the engine for its audit record; nobody is answered. */
  const refuse = async (
    raw: Buffer,
    claimed: { from?: string; messageId: string; command?: string; argv?: string[] },
    reason: string,
    headers = {},
  ) => {
    const { from, messageId } = claimed;
    deps.log('info', 'mail refused', { from, messageId: messageId.slice(0, 200), reason });
    if (unauthenticated.take('*') > 0) return { decision: 'refused' as const, reason };
    const reply = silent(messageId, from);
    await deps.bus.submit(
      {
        id: messageId,
        command: claimed.command ?? '',
        argv: claimed.argv ?? [],
        actor: { channel: 'email', id: from ?? 'unknown' },
        replyTo: reply.address?.() ?? { channel: deps.channel, data: { silent: true } },
        evidence: mailToEvidence(raw, headers),
      },
      reply,
    );
    return { decision: 'refused' as const, reason };
  };

  return async (raw: Buffer): Promise<Handled> => {
    if (raw.length > deps.intake.maxBytes) {
      // Only the header block travels on: enough for the engine's record, not the bulk.
      const block = headerBlock(raw) ?? '';
      const fields = headerFields(block);
      const from = /<?([^\s<>@]+@[^\s<>]+?)>?\s*$/.exec(fields.from?.[0] ?? '')?.[1]?.toLowerCase();
      const reason = `message of ${raw.length} bytes is larger than intake.maxBytes (${deps.intake.maxBytes})`;
      const messageId = fields['message-id']?.[0] ?? 'oversize';
      return refuse(Buffer.from(`${block}\r\n\r\n`, 'latin1'), { from, messageId }, reason, {
        [INTAKE_REFUSED]: reason,
      });
    }
    const judged = await judge(raw, deps.intake);
    const messageId =
      judged.mail?.messageId ?? `<sha256.${createHash('sha256').update(raw).digest('hex')}@hv.invalid>`;
    if (!judged.ok && judged.temporary) {
      // DNS trouble is not a verdict: keep the message queued (like an MTA) for a while.
      if (firstTried.size > 10_000) firstTried.clear();
      const first = firstTried.get(messageId) ?? deps.now().getTime();
      firstTried.set(messageId, first);
      if (deps.now().getTime() - first < TEMPORARY_RETRY_MS) throw new TryLater(judged.reason);
    }
    firstTried.delete(messageId);
    if (!judged.ok)
      return refuse(
        raw,
        { from: judged.claimed, messageId, command: judged.mail?.command, argv: judged.mail?.argv },
        judged.reason,
      );
    const { mail, proven } = judged;
    const actor = proven.actor;
    // Only authenticated messages are remembered: a forged copy of a real Message-ID cannot
    // shadow the real message, and a forged flood writes nothing here.
    if (existsSync(seenPath(messageId))) {
      deps.log('info', 'duplicate mail ignored', { from: actor.id, messageId: messageId.slice(0, 200) });
      return { decision: 'duplicate' };
    }
    if (perSender.take(actor.id) > 0) {
      const reason = `more than ${deps.intake.ratePerMinute} mails a minute from ${actor.id}`;
      return refuse(raw, { from: actor.id, messageId, command: mail.command, argv: mail.argv }, reason, {
        [INTAKE_REFUSED]: reason,
      });
    }
    const reply = deps.replyFor({
      messageId,
      sender: actor.id,
      subject: mail.subject,
      references: mail.references,
    });
    const evidence = mailToEvidence(raw);
    let handled: Handled;
    // The engine's own lookups failed where ours passed (DNS trouble there): not a verdict either.
    const engineTryLater = (out: SubmitOutcome) => {
      if (out.kind === 'refused' && /temperror/.test(out.reason)) throw new TryLater(out.reason);
    };
    if (mail.token) {
      const out = await deps.bus.confirm(mail.token, actor, reply, evidence);
      engineTryLater(out);
      handled = { decision: 'confirmed', outcome: out.kind };
    } else {
      const out = await deps.bus.submit(
        {
          id: messageId,
          command: proven.command ?? '',
          argv: proven.argv ?? [],
          actor,
          replyTo: reply.address?.() ?? { channel: deps.channel, data: {} },
          evidence,
        },
        reply,
      );
      engineTryLater(out);
      handled = { decision: 'submitted', outcome: out.kind };
    }
    writeFileAtomic(seenPath(messageId), `${messageId}\n`, 0o600, 0o700);
    deps.log('info', 'mail handled', { from: actor.id, messageId: messageId.slice(0, 200), ...handled });
    return handled;
  };
}
