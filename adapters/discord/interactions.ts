import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  DiscordAPIError,
  type Interaction,
} from 'discord.js';
import type { CommandBus, SubmitOutcome } from '../../src/bus/types.js';
import { errorMessage } from '../../src/errors.js';
import type { AdapterContext } from '../types.js';
import { CANCEL_PREFIX, CONFIRM_PREFIX } from './render.js';
import type { DiscordReply, DiscordReplyData } from './reply.js';
import { actorOf, argvOf } from './slash.js';

/** What the interaction handler needs from the adapter. */
export interface InteractionDeps {
  bus: CommandBus;
  host: string;
  /** Where a reply continues when an interaction has no channel id. */
  fallbackChannelId: string;
  tokenTtlMs: number;
  ctx: Pick<AdapterContext, 'now' | 'log'>;
  /** Confirmation tokens settled by a click (shared with the replies' expiry timers). */
  settled: Set<string>;
  makeReply(data: DiscordReplyData): DiscordReply;
}

/**
 * `/hv` and its buttons: acknowledge at once, turn the interaction into a bus request (or a
 * confirm/cancel), and show what the bus decided unless it already did through the Reply.
 */
export class InteractionHandler {
  constructor(private readonly d: InteractionDeps) {}

  async handle(interaction: Interaction): Promise<void> {
    if (interaction.isChatInputCommand() && interaction.commandName === 'hv')
      await this.onCommand(interaction);
    else if (interaction.isButton() && interaction.customId.startsWith('hv:'))
      await this.onButton(interaction);
  }

  private replyData(
    interaction: ChatInputCommandInteraction | ButtonInteraction,
    kind: DiscordReplyData['kind'],
    command: string,
  ): DiscordReplyData {
    return {
      applicationId: interaction.applicationId,
      interactionId: interaction.id,
      token: interaction.token,
      kind,
      channelId: interaction.channelId ?? this.d.fallbackChannelId,
      userId: interaction.user.id,
      command,
      tokenExpiresAt: this.d.ctx.now().getTime() + this.d.tokenTtlMs,
    };
  }

  private async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    // Acknowledge first: Discord allows 3 s, and the bus may take its time to authorise and audit.
    try {
      await interaction.deferReply();
    } catch (e) {
      // 10062: too late, Discord already told the user it failed; running it now would surprise.
      if (e instanceof DiscordAPIError && Number(e.code) === 10062) {
        this.d.ctx.log('warn', 'discord interaction expired before it was acknowledged', {
          interaction: interaction.id,
        });
        return;
      }
      // 40060 (already acknowledged): a replayed delivery; the bus recognises the request id.
      if (!(e instanceof DiscordAPIError && Number(e.code) === 40060)) throw e;
    }
    const bus = this.d.bus;
    const { command, argv } = argvOf(interaction);
    const reply = this.d.makeReply({
      ...this.replyData(interaction, 'command', command),
      byline: `Requested by <@${interaction.user.id}>.`,
    });
    const actor = actorOf(interaction);
    let outcome: SubmitOutcome;
    try {
      outcome = await bus.submit(
        { id: interaction.id, command, argv, actor, replyTo: reply.address() },
        reply,
      );
    } catch (e) {
      // Never leave the user with "thinking…" until Discord gives up.
      await reply.refused(`hv could not take the request (${errorMessage(e)}); see the hv daemon log.`);
      throw e;
    }
    await this.show(outcome, reply, `Requested by <@${interaction.user.id}>.`);
  }

  private async onButton(interaction: ButtonInteraction): Promise<void> {
    await interaction.deferUpdate();
    const id = interaction.customId;
    const confirm = id.startsWith(CONFIRM_PREFIX);
    const rest = id.slice((confirm ? CONFIRM_PREFIX : CANCEL_PREFIX).length);
    const sep = rest.indexOf(':');
    if (!(confirm || id.startsWith(CANCEL_PREFIX)) || sep < 0) return;
    const command = rest.slice(0, sep);
    const token = rest.slice(sep + 1);
    const bus = this.d.bus;
    const actor = actorOf(interaction);
    const reply = this.d.makeReply({
      ...this.replyData(interaction, 'component', command),
      byline: `Confirmed by <@${interaction.user.id}>.`,
    });
    if (!confirm) {
      try {
        await bus.cancel(token, actor, reply);
      } catch (e) {
        await reply.refused(errorMessage(e));
        return;
      }
      // A refused cancel (not the requester nor an admin, used token) was shown by the bus.
      if (reply.refusals > 0) return;
      this.d.settled.add(token);
      await reply.note(`hv ${command}: cancelled`, `Cancelled by <@${interaction.user.id}>.`);
      return;
    }
    // Settled while the bus decides, so an expiry timer firing meanwhile cannot close the prompt.
    this.d.settled.add(token);
    const outcome = await bus.confirm(token, actor, reply).catch(async (e: unknown) => {
      this.d.settled.delete(token);
      await reply.refused(`hv could not take the confirmation (${errorMessage(e)}); see the hv daemon log.`);
      throw e;
    });
    if (outcome.kind !== 'accepted' && outcome.kind !== 'duplicate') this.d.settled.delete(token);
    if (outcome.kind === 'duplicate') await reply.whisper('Already confirmed.');
    else if (outcome.kind === 'awaiting-approval')
      // Keep the buttons on the message for the next admin.
      await reply.note(
        `hv ${command}: waiting for approval`,
        `Approved by <@${interaction.user.id}>; ${outcome.approvalsNeeded} more admin approval(s) needed.`,
        { components: interaction.message.components.map((row) => row.toJSON()) },
      );
    else await this.show(outcome, reply, `Confirmed by <@${interaction.user.id}>.`);
  }

  /** Shows what the bus decided, unless the bus already showed it through the Reply. */
  private async show(outcome: SubmitOutcome, reply: DiscordReply, who: string): Promise<void> {
    const command = reply.data.command;
    switch (outcome.kind) {
      case 'accepted':
        await reply.note(`hv ${command} on ${this.d.host}: started`, `${who} Working…`, {
          ifNothingShown: true,
        });
        return;
      case 'needs-confirmation':
        await reply.confirm(outcome.prompt);
        return;
      case 'awaiting-approval':
        await reply.note(
          `hv ${command}: waiting for approval`,
          `${who} ${outcome.approvalsNeeded} more admin approval(s) needed.`,
        );
        return;
      case 'refused':
        await reply.refused(outcome.reason);
        return;
      case 'duplicate':
        // The first delivery's reply is already showing this request.
        return;
    }
  }
}
