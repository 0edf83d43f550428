import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  DiscordAPIError,
  type Interaction,
  MessageFlags,
} from 'discord.js';
import type { CommandBus } from '../../src/bus/types.js';
import { errorMessage } from '../../src/errors.js';
import type { AdapterContext } from '../../src/ports/channel.js';
import { CANCEL_PREFIX, CONFIRM_PREFIX, KEEP_PREFIX } from './render.js';
import type { DiscordReply, DiscordReplyData } from './reply.js';
import { actorOf, argvOf } from './slash.js';

/** What the interaction handler needs from the adapter. */
export interface InteractionDeps {
  bus: CommandBus;
  /** The configured server: interactions from any other (or from a DM) never reach the bus. */
  guildId: string;
  /** Where a reply continues when an interaction has no channel id. */
  fallbackChannelId: string;
  tokenTtlMs: number;
  ctx: Pick<AdapterContext, 'now' | 'log'>;
  /** Confirmation tokens settled by a click (shared with the replies' expiry timers). */
  settled: Set<string>;
  makeReply(data: DiscordReplyData): DiscordReply;
}

/**
 * `/hv` and its buttons: acknowledge at once and turn the interaction into a bus request (or a
 * confirm/cancel). What the bus decided reaches the user through the Reply the bus drives.
 */
export class InteractionHandler {
  constructor(private readonly d: InteractionDeps) {}

  async handle(interaction: Interaction): Promise<void> {
    const command = interaction.isChatInputCommand() && interaction.commandName === 'hv';
    const button = interaction.isButton() && interaction.customId.startsWith('hv:');
    if (!command && !button) return;
    if (interaction.guildId !== this.d.guildId) {
      // The bot may sit in other servers (or be used in a DM): roles there mean nothing here.
      this.d.ctx.log('warn', 'discord interaction from another server refused', {
        interaction: interaction.id,
        guild: interaction.guildId ?? 'none',
      });
      if (interaction.isRepliable())
        await interaction.reply({
          content: 'hv does not take commands from this server.',
          flags: MessageFlags.Ephemeral,
        });
      return;
    }
    if (interaction.isChatInputCommand()) await this.onCommand(interaction);
    else if (interaction.isButton()) await this.onButton(interaction);
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
    try {
      // The bus shows what it decided through the reply; the outcome is not shown again.
      await bus.submit({ id: interaction.id, command, argv, actor, replyTo: reply.address() }, reply);
    } catch (e) {
      // The bus failed, so it cannot answer: never leave the user with "thinking…" until Discord
      // gives up.
      await reply.refused(`hv could not take the request (${errorMessage(e)}); see the hv daemon log.`);
      throw e;
    }
  }

  /** Keep in a confirmation window's notice: the engine decides who may (requester or admin). */
  private async onKeep(interaction: ButtonInteraction, token: string): Promise<void> {
    const reply = this.d.makeReply(this.replyData(interaction, 'component', 'keep'));
    const keep = this.d.bus.keep?.bind(this.d.bus);
    if (!keep) return reply.refused('This hv cannot take Keep clicks.');
    try {
      await keep(token, actorOf(interaction), reply);
    } catch (e) {
      await reply.refused(`hv could not take the click (${errorMessage(e)}); see the hv daemon log.`);
    }
  }

  private async onButton(interaction: ButtonInteraction): Promise<void> {
    await interaction.deferUpdate();
    const id = interaction.customId;
    if (id.startsWith(KEEP_PREFIX)) return this.onKeep(interaction, id.slice(KEEP_PREFIX.length));
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
      byline: `${confirm ? 'Confirmed' : 'Cancelled'} by <@${interaction.user.id}>.`,
    });
    if (!confirm) {
      try {
        await bus.cancel(token, actor, reply);
      } catch (e) {
        await reply.refused(errorMessage(e));
        return;
      }
      // Bookkeeping, not display: a cancelled prompt must not be closed again when it expires.
      if (reply.refusals === 0) this.d.settled.add(token);
      return;
    }
    // Settled while the bus decides, so an expiry timer firing meanwhile cannot close the prompt.
    this.d.settled.add(token);
    const outcome = await bus.confirm(token, actor, reply).catch(async (e: unknown) => {
      this.d.settled.delete(token);
      await reply.refused(`hv could not take the confirmation (${errorMessage(e)}); see the hv daemon log.`);
      throw e;
    });
    // Still open (refused, more approvals needed): its expiry closes it as before.
    if (outcome.kind !== 'accepted' && outcome.kind !== 'duplicate') this.d.settled.delete(token);
  }
}
