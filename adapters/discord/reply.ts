import { DiscordAPIError, type REST, Routes } from 'discord.js';
import type { ConfirmationPrompt, Reply, ReplyAddress, WindowNotice } from '../../src/bus/types.js';
import { errorMessage } from '../../src/errors.js';
import type { AdapterContext } from '../../src/ports/channel.js';
import type { CommandResult } from '../../src/ports/command.js';
import {
  type MessageBody,
  noteMessage,
  type ProgressLine,
  progressMessage,
  promptMessage,
  refusalMessage,
  resultMessage,
  windowMessage,
} from './render.js';

/**
 * What a Discord reply needs to find its way back, also after a daemon restart (the bus persists
 * it as `ReplyAddress.data`): the interaction webhook (application id + token, valid 15 minutes)
 * and the channel to continue in once the token has expired.
 */
export interface DiscordReplyData {
  applicationId: string;
  interactionId: string;
  token: string;
  /** `command`: the /hv reply message; `component`: the message a button was clicked on. */
  kind: 'command' | 'component';
  channelId: string;
  userId: string;
  command: string;
  /** Epoch ms when the interaction token stops working. */
  tokenExpiresAt: number;
  /** The channel message the reply continues in, once it had to move there. */
  messageId?: string;
  /** Shown above the steps while the command runs, e.g. "Requested by <@123>." */
  byline?: string;
  /** The confirmation window's notice (a channel message with Keep), once posted. */
  windowMessageId?: string;
}

/** Discord interaction tokens last 15 minutes; switch to the channel a minute before. */
export const TOKEN_TTL_MS = 15 * 60_000;
const TOKEN_MARGIN_MS = 60_000;

export function isReplyData(d: Record<string, unknown>): d is Record<string, unknown> & DiscordReplyData {
  return (
    typeof d.applicationId === 'string' &&
    typeof d.token === 'string' &&
    typeof d.channelId === 'string' &&
    typeof d.tokenExpiresAt === 'number' &&
    (d.kind === 'command' || d.kind === 'component')
  );
}

/**
 * The `Reply` sink of one Discord request. Everything goes through REST (never the gateway), so a
 * reply rebuilt from its data after a restart, or during a gateway outage, works the same. Calls
 * are serialised; progress edits are coalesced so a burst of steps is one edit, not a flood.
 */
export class DiscordReply implements Reply {
  private chain: Promise<void> = Promise.resolve();
  private readonly steps: ProgressLine[] = [];
  private progressQueued = false;
  /** Something other than the "thinking…" state is on the public message. */
  private rendered = false;
  /** How many times the public message was rendered (to tell whether a prompt is still shown). */
  private renders = 0;
  private refusalCalls = 0;
  private original = true;
  private finished = false;

  constructor(
    private readonly rest: REST,
    readonly data: DiscordReplyData,
    private readonly ctx: Pick<AdapterContext, 'now' | 'log'>,
    private readonly host: string,
    /** The adapter's channel name, `ReplyAddress.channel`. */
    private readonly channelName: string,
    /** Confirmation tokens a click settled (confirmed or cancelled): their prompts never expire. */
    private readonly settled: ReadonlySet<string> = new Set(),
  ) {}

  /** How many refusals this reply was asked to show. */
  get refusals(): number {
    return this.refusalCalls;
  }

  /** Where this reply is now (the bus persists it, so a restart continues in the same place). */
  address(): ReplyAddress {
    return { channel: this.channelName, data: { ...this.data } };
  }

  progress(step: string, detail?: string): Promise<void> {
    if (this.finished) return Promise.resolve();
    this.steps.push({ step, ...(detail ? { detail } : {}), at: this.ctx.now().getTime() });
    if (this.progressQueued) return this.chain;
    this.progressQueued = true;
    return this.enqueue(async () => {
      this.progressQueued = false;
      if (this.finished) return;
      await this.showPublic(
        progressMessage(this.data.command, this.host, this.steps, this.ctx.now().getTime(), this.data.byline),
      );
    });
  }

  result(result: CommandResult): Promise<void> {
    return this.enqueue(async () => {
      this.finished = true;
      const body = resultMessage(this.data.command, this.host, result);
      if (this.tokenUsable()) {
        await this.showPublic(body);
      } else {
        // The operation outlived the interaction: the result is a new message at the bottom of the
        // channel, mentioning who asked, rather than an edit nobody notices.
        await this.postChannel({
          ...body,
          content: `<@${this.data.userId}>`,
          allowed_mentions: { parse: [], users: [this.data.userId] },
        });
      }
    });
  }

  refused(reason: string): Promise<void> {
    this.refusalCalls += 1;
    return this.enqueue(async () => {
      if (!this.tokenUsable()) {
        await this.postChannel({
          content: `<@${this.data.userId}> ⛔ ${reason}`,
          allowed_mentions: { parse: [] },
        });
        return;
      }
      // A /hv that nothing else was shown for: drop the public "thinking…" message, so that the
      // refusal is seen by the requester only.
      if (this.data.kind === 'command' && !this.rendered) {
        await this.webhook('delete', '@original').catch((e: unknown) =>
          this.ctx.log('warn', 'discord reply delete failed', { error: errorMessage(e) }),
        );
      }
      await this.followUp(refusalMessage(reason));
    });
  }

  confirm(prompt: ConfirmationPrompt): Promise<void> {
    return this.enqueue(async () => {
      await this.showPublic(promptMessage(prompt));
      const shown = this.renders;
      // Close the prompt when it expires, unless something else was shown since (a click).
      const timer = setTimeout(
        () => {
          if (this.renders !== shown || this.settled.has(prompt.token) || !this.tokenUsable()) return;
          this.note(
            `hv ${prompt.command}: confirmation expired`,
            `Nobody confirmed in time. Run \`/hv ${prompt.command}\` again if it is still wanted.`,
          ).catch(() => undefined);
        },
        Math.max(0, Date.parse(prompt.expiresAt) - this.ctx.now().getTime()),
      );
      timer.unref?.();
    });
  }

  /**
   * A confirmation window: `open` posts its notice with Keep as a channel message (the operation may
   * outlive the interaction token); `closed` edits it, button gone; `kept` answers a Keep click on
   * the notice itself.
   */
  window(notice: WindowNotice): Promise<void> {
    return this.enqueue(async () => {
      if (notice.state === 'kept') {
        await this.showPublic(
          noteMessage('Confirmation window: kept', `${notice.text} (<@${this.data.userId}>)`),
        );
        return;
      }
      if (notice.state === 'closed') {
        const id = this.data.windowMessageId;
        if (!id) return;
        this.data.windowMessageId = undefined;
        await this.rest.patch(Routes.channelMessage(this.data.channelId, id), {
          body: noteMessage('Confirmation window closed', notice.text),
        });
        return;
      }
      const created = await this.postChannel(windowMessage(notice.text, notice.deadline, notice.token));
      this.data.windowMessageId = created.id;
    });
  }

  /** A status line on the public message: an unanswered prompt that expired. */
  private note(title: string, text: string): Promise<void> {
    return this.enqueue(async () => {
      await this.showPublic(noteMessage(title, text));
    });
  }

  /** Resolves when every call so far has been sent. */
  flush(): Promise<void> {
    return this.chain;
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task);
    // One failed edit must not wedge the next ones; the caller still sees this one's error.
    this.chain = run.catch((e: unknown) => {
      this.ctx.log('warn', 'discord reply failed', {
        interaction: this.data.interactionId,
        error: errorMessage(e),
      });
    });
    return run;
  }

  private tokenUsable(): boolean {
    return this.original && this.ctx.now().getTime() < this.data.tokenExpiresAt - TOKEN_MARGIN_MS;
  }

  /** Edit the interaction's message while the token lives, else the channel message. */
  private async showPublic(body: MessageBody): Promise<void> {
    this.rendered = true;
    this.renders += 1;
    if (this.tokenUsable()) {
      try {
        await this.webhook('patch', '@original', body);
        return;
      } catch (e) {
        // 50027 Invalid Webhook Token / 10015 Unknown Webhook: the token died early (restart after
        // 15 minutes, clock skew); continue in the channel.
        if (!(e instanceof DiscordAPIError) || ![50027, 10015, 10008].includes(Number(e.code))) throw e;
        this.original = false;
        this.ctx.log('info', 'discord interaction token expired; continuing in the channel', {
          interaction: this.data.interactionId,
        });
      }
    }
    if (this.data.messageId) {
      try {
        await this.rest.patch(Routes.channelMessage(this.data.channelId, this.data.messageId), { body });
        return;
      } catch (e) {
        if (!(e instanceof DiscordAPIError) || Number(e.code) !== 10008) throw e;
      }
    }
    const created = await this.postChannel(body);
    this.data.messageId = created.id;
  }

  private async postChannel(body: MessageBody): Promise<{ id: string }> {
    return (await this.rest.post(Routes.channelMessages(this.data.channelId), { body })) as { id: string };
  }

  private async followUp(body: MessageBody): Promise<void> {
    await this.rest.post(Routes.webhook(this.data.applicationId, this.data.token), { body, auth: false });
  }

  private async webhook(method: 'patch' | 'delete', messageId: string, body?: MessageBody): Promise<void> {
    const route = Routes.webhookMessage(this.data.applicationId, this.data.token, messageId);
    if (method === 'patch') await this.rest.patch(route, { body, auth: false });
    else await this.rest.delete(route, { auth: false });
  }
}
