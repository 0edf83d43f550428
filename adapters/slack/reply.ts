import type { webApi } from '@slack/bolt';
import type { ConfirmationPrompt, Reply, ReplyAddress, WindowNotice } from '../../src/bus/types.js';
import type { CommandResult } from '../../src/ports/command.js';
import { confirmMessage, esc, headline, resultMessage, settledPrompt, windowMessage } from './blocks.js';

type WebClient = InstanceType<typeof webApi.WebClient>;

/** Routing data of a Slack request; persisted in the ReplyAddress so a restart finds the thread. */
export interface SlackReplyData {
  /** Conversation id where `/hv` was typed. */
  channel: string;
  /** The requester (ephemeral refusals go to them). */
  user?: string;
  team?: string;
  command: string;
  /** Thread parent message, once posted. */
  threadTs?: string;
  /** The progress message edited in place. */
  progressTs?: string;
  /** Slack's response_url of the request (valid 30 min): a private fallback for refusals. */
  responseUrl?: string;
  /**
   * The prompt message a button click came from: `confirm` shows it again in place (who approved
   * so far), and the first progress or result closes it, buttons removed, with `settledNote`.
   */
  promptTs?: string;
  promptText?: string;
  /** What the closed prompt says, e.g. "Confirmed by <@U1>; running." */
  settledNote?: string;
  /** The confirmation window's notice (with its Keep button), once posted, and its text. */
  windowTs?: string;
  windowText?: string;
}

export function replyData(data: Record<string, unknown>): SlackReplyData {
  const s = (k: string) => (typeof data[k] === 'string' ? (data[k] as string) : undefined);
  return {
    channel: s('channel') ?? '',
    user: s('user'),
    team: s('team'),
    command: s('command') ?? 'command',
    threadTs: s('threadTs'),
    progressTs: s('progressTs'),
    responseUrl: s('responseUrl'),
    promptTs: s('promptTs'),
    promptText: s('promptText'),
    settledNote: s('settledNote'),
    windowTs: s('windowTs'),
    windowText: s('windowText'),
  };
}

interface Step {
  name: string;
  detail?: string;
}

/**
 * One request's thread: a parent message in the channel, one progress message edited in place
 * (chat.update; edits are coalesced so a burst of steps is a few calls, not a flood), the final
 * result as a thread reply, refusals as ephemeral messages to the requester.
 */
export class SlackReply implements Reply {
  private readonly steps: Step[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private updating: Promise<void> | undefined;
  private dirty = false;
  private finished = false;

  constructor(
    private readonly client: WebClient,
    private readonly channelName: string,
    readonly data: SlackReplyData,
  ) {}

  address(): ReplyAddress {
    return { channel: this.channelName, data: { ...this.data } };
  }

  /** Run calls one after another, so the thread is created once and edits keep their order. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }

  private async thread(): Promise<string> {
    if (this.data.threadTs) return this.data.threadTs;
    const who = this.data.user ? ` requested by <@${this.data.user}>` : '';
    const res = await this.client.chat.postMessage({
      channel: this.data.channel,
      text: `\`/hv ${esc(this.data.command)}\`${who}`,
    });
    this.data.threadTs = res.ts as string;
    return this.data.threadTs;
  }

  private progressText(final?: CommandResult): string {
    const lines = this.steps.map((s, i) => {
      const last = i === this.steps.length - 1;
      const mark =
        !last || final
          ? final && last && final.exitCode !== 0 && final.status !== 'update-available'
            ? ':x:'
            : ':white_check_mark:'
          : ':hourglass_flowing_sand:';
      return `${mark} ${esc(s.name)}${s.detail ? `: ${esc(s.detail)}` : ''}`;
    });
    return lines.join('\n').slice(-3500) || 'started';
  }

  /** Bring the progress message up to date: at most one chat.update in flight, the latest state wins. */
  private async flushProgress(final?: CommandResult): Promise<void> {
    const threadTs = await this.thread();
    if (!this.data.progressTs) {
      const res = await this.client.chat.postMessage({
        channel: this.data.channel,
        thread_ts: threadTs,
        text: this.progressText(final),
      });
      this.data.progressTs = res.ts as string;
      return;
    }
    this.dirty = true;
    if (this.updating) return this.updating;
    this.updating = (async () => {
      try {
        while (this.dirty) {
          this.dirty = false;
          await this.client.chat.update({
            channel: this.data.channel,
            ts: this.data.progressTs as string,
            text: this.progressText(final),
          });
        }
      } finally {
        this.updating = undefined;
      }
    })();
    return this.updating;
  }

  /** The click's prompt is answered: the same text without buttons, saying who did what. */
  private async settlePrompt(): Promise<void> {
    const ts = this.data.promptTs;
    if (!ts) return;
    this.data.promptTs = undefined;
    await this.client.chat.update({
      channel: this.data.channel,
      ts,
      ...settledPrompt(this.data.promptText ?? '', this.data.settledNote ?? 'Answered.'),
    });
  }

  progress(step: string, detail?: string): Promise<void> {
    if (this.finished) return Promise.resolve();
    const last = this.steps.at(-1);
    if (last && last.name === step) last.detail = detail;
    else this.steps.push({ name: step, detail });
    return this.serial(async () => {
      await this.settlePrompt();
      await this.flushProgress();
    });
  }

  result(result: CommandResult): Promise<void> {
    return this.serial(async () => {
      await this.settlePrompt();
      const threadTs = await this.thread();
      if (this.steps.length && this.data.progressTs) {
        this.finished = true;
        await this.updating;
        await this.client.chat.update({
          channel: this.data.channel,
          ts: this.data.progressTs,
          text: this.progressText(result),
        });
      }
      this.finished = true;
      const msg = resultMessage(this.data.command, result);
      await this.client.chat.postMessage({ channel: this.data.channel, thread_ts: threadTs, ...msg });
      const who = this.data.user ? ` by <@${this.data.user}>` : '';
      await this.client.chat
        .update({
          channel: this.data.channel,
          ts: threadTs,
          text: `\`/hv ${esc(this.data.command)}\`${who}: ${esc(headline(this.data.command, result))}`,
        })
        .catch(() => {}); // the parent headline is a courtesy; the result is in the thread
    });
  }

  refused(reason: string): Promise<void> {
    return this.serial(async () => {
      const text = `:no_entry: ${esc(reason)}`;
      if (this.data.user) {
        try {
          await this.client.chat.postEphemeral({
            channel: this.data.channel,
            user: this.data.user,
            text,
            ...(this.data.threadTs ? { thread_ts: this.data.threadTs } : {}),
          });
        } catch (e) {
          // The bot may not be in that conversation (not_in_channel, a DM): the request's own
          // response_url still reaches the requester, privately.
          if (!this.data.responseUrl) throw e;
          const res = await fetch(this.data.responseUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
          });
          if (!res.ok) throw e;
        }
      } else {
        await this.client.chat.postMessage({
          channel: this.data.channel,
          thread_ts: await this.thread(),
          text,
        });
      }
    });
  }

  /**
   * A confirmation window: `open` posts its notice (with Keep) in the thread; `closed` shows it
   * again without the button; `kept` answers a Keep click on the notice it came from.
   */
  window(notice: WindowNotice): Promise<void> {
    return this.serial(async () => {
      if (notice.state === 'kept') {
        this.data.settledNote = `:white_check_mark: Kept by <@${esc(this.data.user ?? '?')}>; the activation stays once hv sees it.`;
        await this.settlePrompt();
        return;
      }
      if (notice.state === 'closed') {
        const ts = this.data.windowTs;
        if (!ts) return;
        this.data.windowTs = undefined;
        await this.client.chat.update({
          channel: this.data.channel,
          ts,
          ...settledPrompt(this.data.windowText ?? '', esc(notice.text)),
        });
        return;
      }
      const msg = windowMessage(notice);
      const res = await this.client.chat.postMessage({
        channel: this.data.channel,
        thread_ts: await this.thread(),
        ...msg,
      });
      this.data.windowTs = res.ts as string;
      this.data.windowText = msg.text;
    });
  }

  confirm(prompt: ConfirmationPrompt): Promise<void> {
    return this.serial(async () => {
      // Asked again from a click on the prompt (more approvals needed): update it in place.
      if (this.data.promptTs) {
        const msg = confirmMessage(prompt);
        this.data.promptText = msg.text;
        await this.client.chat.update({ channel: this.data.channel, ts: this.data.promptTs, ...msg });
        return;
      }
      const threadTs = await this.thread();
      await this.client.chat.postMessage({
        channel: this.data.channel,
        thread_ts: threadTs,
        ...confirmMessage(prompt),
      });
    });
  }
}
