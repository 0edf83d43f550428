import { randomBytes } from 'node:crypto';
import type { ConfirmationPrompt, Reply, ReplyAddress } from '../../../src/bus/types.js';
import { escapeHtml } from '../../../src/notify/templates.js';
import type { CommandResult } from '../../../src/ports/command.js';
import type { OutgoingMail } from '../transport.js';

/** Routing data of a command mail; persisted in the ReplyAddress so a restart still answers in the thread. */
export interface MailReplyData {
  /** The request's Message-ID (with brackets): what the answers are In-Reply-To. */
  messageId: string;
  /** Who asked (the authenticated From address). */
  sender: string;
  subject: string;
  /** The thread before the request. */
  references: string[];
  /** The one "started" mail went out (no more progress mails after it). */
  started?: boolean;
  /** A request hv must not answer at all (unauthenticated, automatic): every call is a no-op. */
  silent?: boolean;
}

/** Routing data back from a persisted address (unknown keys dropped, missing ones made safe). */
export function mailReplyData(data: Record<string, unknown>): MailReplyData {
  const s = (k: string) => (typeof data[k] === 'string' ? (data[k] as string) : '');
  return {
    messageId: s('messageId'),
    sender: s('sender'),
    subject: s('subject'),
    references: Array.isArray(data.references) ? data.references.filter((r) => typeof r === 'string') : [],
    ...(data.started === true ? { started: true } : {}),
    // A damaged address answers nobody rather than someone unexpected.
    ...(data.silent === true || !s('sender') ? { silent: true } : {}),
  };
}

/** What the reply needs of the channel: who hv is, and a way to send. */
export interface MailReplyDeps {
  channel: string;
  /** hv's own address (intake.address): replies come from it. */
  address: string;
  host: string;
  send(mail: OutgoingMail): Promise<void>;
}

const reSubject = (s: string) => (/^\s*re\s*:/i.test(s) ? s : `Re: ${s || 'hv'}`).replace(/[\r\n]+/g, ' ');

/**
 * Answers to one command mail, in its thread (In-Reply-To, References), text and HTML, every one
 * marked `Auto-Submitted: auto-replied` (RFC 3834) so that well-behaved robots never answer back.
 * Long operations get one "started" mail and one result mail, not a stream of steps.
 */
export class MailReply implements Reply {
  constructor(
    private readonly deps: MailReplyDeps,
    readonly data: MailReplyData,
  ) {}

  address(): ReplyAddress {
    return { channel: this.deps.channel, data: { ...this.data } };
  }

  private async mail(subject: string, text: string, html: string): Promise<void> {
    if (this.data.silent) return;
    const domain = this.deps.address.split('@').pop() ?? 'hv.invalid';
    await this.deps.send({
      from: this.deps.address,
      to: this.data.sender,
      subject,
      text,
      html,
      messageId: `<hv.${randomBytes(12).toString('hex')}@${domain}>`,
      ...(this.data.messageId
        ? { inReplyTo: this.data.messageId, references: [...this.data.references, this.data.messageId] }
        : {}),
      headers: { 'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All' },
    });
  }

  async progress(step: string, detail?: string): Promise<void> {
    if (this.data.started || this.data.silent) return;
    this.data.started = true;
    const line = `${step}${detail ? `: ${detail}` : ''}`;
    const text = `hv on ${this.deps.host} started your request (${line}).\nThe result follows in this thread.\n`;
    await this.mail(reSubject(this.data.subject), text, `<p>${escapeHtml(text).replace(/\n/g, '<br>')}</p>`);
  }

  async result(r: CommandResult): Promise<void> {
    const head = `${r.status.toUpperCase()} on ${this.deps.host}`;
    const text = `${head}\n\n${r.message}\n`;
    const html = `<p><strong>${escapeHtml(head)}</strong></p><pre>${escapeHtml(r.message)}</pre>`;
    await this.mail(reSubject(this.data.subject), text, html);
  }

  async refused(reason: string): Promise<void> {
    await this.mail(reSubject(this.data.subject), `${reason}\n`, `<p>${escapeHtml(reason)}</p>`);
  }

  async confirm(p: ConfirmationPrompt): Promise<void> {
    const what = ['hv', p.command, ...p.argv].join(' ');
    const subject = `[hv:${p.token}] Confirm: ${what} on ${this.deps.host}`;
    const how = [
      `To confirm, reply to this mail from an admin address (keep "[hv:${p.token}]" in the Subject).`,
      `To let it expire, do nothing: it expires at ${p.expiresAt}.`,
    ];
    const text = `${p.text}\n\n${how.join('\n')}\n`;
    const html = `<pre>${escapeHtml(p.text)}</pre>${how.map((l) => `<p>${escapeHtml(l)}</p>`).join('')}`;
    await this.mail(subject, text, html);
  }
}
