import { createHash } from 'node:crypto';
import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  Client,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  type Interaction,
  RateLimitError,
  REST,
  type RESTOptions,
  Routes,
} from 'discord.js';
import type { AdapterHost, CommandBus, Reply, ReplyAddress, SubmitOutcome } from '../../src/bus/types.js';
import { errorMessage, HvError, isHvError } from '../../src/errors.js';
import type { HvEvent } from '../../src/events.js';
import {
  type AdapterContext,
  type AdapterFactory,
  type ChannelAdapter,
  type Delivery,
  DeliveryError,
} from '../types.js';
import { CANCEL_PREFIX, CONFIRM_PREFIX, eventMessages } from './render.js';
import { DiscordReply, type DiscordReplyData, isReplyData, TOKEN_TTL_MS } from './reply.js';
import type { DiscordChannel } from './schema.js';
import { actorOf, argvOf, hvCommandDefinition } from './slash.js';

export { DiscordReply, type DiscordReplyData } from './reply.js';

/** Knobs for tests; the config has none of these. */
export interface DiscordAdapterOptions {
  /** How long an interaction token is used before continuing in the channel. Default 15 min. */
  tokenTtlMs?: number;
  /** How long `start` waits for the gateway's READY. Default 30 s. */
  readyTimeoutMs?: number;
  /** First delay before reconnecting when Discord was unreachable at start (doubles, max 5 min). */
  retryMs?: number;
}

/**
 * REST options pointing discord.js at `apiUrl`, and, with `gatewayUrl`, answering GET /gateway/bot
 * with that URL (discord.js 14 takes the gateway address only from there).
 */
export function restOptions(channel: DiscordChannel): Partial<RESTOptions> {
  const opts: Partial<RESTOptions> = {};
  if (channel.apiUrl) opts.api = channel.apiUrl.replace(/\/+$/, '');
  const gatewayUrl = channel.gatewayUrl;
  if (gatewayUrl) {
    opts.makeRequest = async (url, init) => {
      const res = await fetch(url, init as RequestInit);
      if (!res.ok || !new URL(url).pathname.endsWith('/gateway/bot')) return res;
      const info = (await res.json()) as Record<string, unknown>;
      const headers = new Headers(res.headers);
      headers.delete('content-length');
      headers.delete('content-encoding');
      return new Response(JSON.stringify({ ...info, url: gatewayUrl }), { status: res.status, headers });
    };
  }
  return opts;
}

/** A 25-character nonce per notification part: Discord drops a repeat with `enforce_nonce`. */
function nonceFor(deliveryId: string, part: number): string {
  return createHash('sha256').update(`${deliveryId}:${part}`).digest('hex').slice(0, 25);
}

/** Maps a REST failure to what the outbox should do with it. */
export function deliveryErrorOf(e: unknown, channel: DiscordChannel): DeliveryError {
  if (e instanceof DeliveryError) return e;
  if (e instanceof RateLimitError)
    return new DeliveryError(`Discord rate limit (${e.scope}, ${e.route})`, Math.ceil(e.retryAfter));
  if (e instanceof HvError) return new DeliveryError(e.message, undefined, true);
  if (e instanceof DiscordAPIError) {
    const code = Number(e.code);
    if (e.status === 429) {
      const raw = e.rawError as { retry_after?: number };
      return new DeliveryError('Discord rate limit', Math.ceil((raw.retry_after ?? 1) * 1000));
    }
    if (e.status === 401)
      return new DeliveryError(
        `Discord rejected the bot token (401); put a valid bot token in ${channel.tokenFile}`,
        undefined,
        true,
      );
    if (e.status === 403)
      return new DeliveryError(
        `the bot may not post in channel ${channel.channelId} (${code} ${e.message}); give it View Channel, Send Messages and Embed Links there`,
        undefined,
        true,
      );
    if (e.status === 404)
      return new DeliveryError(
        `Discord channel ${channel.channelId} not found (${code}); check channelId`,
        undefined,
        true,
      );
    if (e.status >= 400 && e.status < 500)
      return new DeliveryError(
        `Discord refused the message (${e.status} ${code} ${e.message})`,
        undefined,
        true,
      );
  }
  return new DeliveryError(`Discord request failed: ${errorMessage(e)}`);
}

/**
 * The Discord channel: notifications as embeds over REST, and `/hv` slash commands over an
 * outbound gateway connection (discord.js), handed to the command bus.
 */
export class DiscordAdapter implements ChannelAdapter {
  readonly type = 'discord';
  readonly name: string;
  private client: Client | undefined;
  private bus: CommandBus | undefined;
  private tokenValue: string | undefined;
  /** Notifications: a 429 throws at once (the outbox owns the backoff), no internal retries. */
  private readonly notifyRest: REST;
  /** Replies: discord.js waits out rate limits on edits itself (a user is watching). */
  private readonly replyRest: REST;
  /** Parts of a multi-message notification already posted, so a retry sends only the rest. */
  private readonly sentParts = new Map<string, Set<number>>();
  /** Confirmation tokens settled by a click, so that their prompt is not closed as expired. */
  private readonly settled = new Set<string>();
  private readonly tokenTtlMs: number;
  private readonly readyTimeoutMs: number;
  private readonly retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly channel: DiscordChannel,
    private readonly ctx: AdapterContext,
    opts: DiscordAdapterOptions = {},
  ) {
    this.name = channel.name ?? 'discord';
    this.tokenTtlMs = opts.tokenTtlMs ?? TOKEN_TTL_MS;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
    this.retryMs = opts.retryMs ?? 5_000;
    const base = restOptions(channel);
    this.notifyRest = new REST({ ...base, rejectOnRateLimit: () => true, retries: 0 });
    this.replyRest = new REST(base);
  }

  private token(): string {
    if (this.tokenValue === undefined) {
      this.tokenValue = this.ctx.readSecret(this.channel.tokenFile);
      this.notifyRest.setToken(this.tokenValue);
      this.replyRest.setToken(this.tokenValue);
    }
    return this.tokenValue;
  }

  async deliver(event: HvEvent, delivery: Delivery): Promise<void> {
    try {
      this.token();
    } catch (e) {
      throw deliveryErrorOf(e, this.channel);
    }
    const bodies = eventMessages(event);
    const sent = this.sentParts.get(delivery.id) ?? new Set<number>();
    for (const [i, body] of bodies.entries()) {
      if (sent.has(i)) continue;
      try {
        await this.notifyRest.post(Routes.channelMessages(this.channel.channelId), {
          body: { ...body, nonce: nonceFor(delivery.id, i), enforce_nonce: true },
        });
      } catch (e) {
        if (sent.size) this.remember(delivery.id, sent);
        throw deliveryErrorOf(e, this.channel);
      }
      sent.add(i);
    }
    this.sentParts.delete(delivery.id);
  }

  private remember(id: string, parts: Set<number>): void {
    this.sentParts.set(id, parts);
    if (this.sentParts.size > 500) {
      const oldest = this.sentParts.keys().next().value;
      if (oldest !== undefined) this.sentParts.delete(oldest);
    }
  }

  /**
   * Registers /hv in the guild, logs in to the gateway and hands interactions to `host.bus`. A
   * wrong token or missing access fails at once with what to fix; an unreachable Discord (network
   * not up yet at boot, 5xx) is retried in the background with backoff until `stop`.
   */
  async start(intake: unknown): Promise<void> {
    const host = intake as AdapterHost;
    if (!host?.bus) throw new Error('discord adapter started without a command bus');
    this.bus = host.bus;
    this.stopped = false;
    try {
      await this.connect();
    } catch (e) {
      if (isHvError(e) && (e.details.permanent || e.code === 'secret-unreadable')) throw e;
      this.ctx.log('warn', 'discord unreachable at start; retrying in the background', {
        channel: this.name,
        error: errorMessage(e),
      });
      this.retryLater(this.retryMs);
    }
  }

  private retryLater(delayMs: number): void {
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().then(
        () => undefined,
        (e: unknown) => {
          this.ctx.log('warn', 'discord connection failed; retrying', {
            channel: this.name,
            error: errorMessage(e),
            retryInMs: Math.min(delayMs * 2, 300_000),
          });
          this.retryLater(Math.min(delayMs * 2, 300_000));
        },
      );
    }, delayMs);
    this.retryTimer.unref?.();
  }

  private async connect(): Promise<void> {
    const token = this.token();
    const { applicationId, guildId } = this.channel;
    try {
      await this.replyRest.put(Routes.applicationGuildCommands(applicationId, guildId), {
        body: [hvCommandDefinition(this.ctx.config.host)],
      });
    } catch (e) {
      const permanent = e instanceof DiscordAPIError && e.status >= 400 && e.status < 500 && e.status !== 429;
      throw new HvError('adapter-failed', this.registrationHint(e), { permanent });
    }
    if (this.stopped) return;
    const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: restOptions(this.channel) });
    this.client = client;
    client.on(Events.InteractionCreate, (interaction) => {
      this.onInteraction(interaction).catch((e: unknown) =>
        this.ctx.log('error', 'discord interaction failed', {
          channel: this.name,
          interaction: interaction.id,
          error: errorMessage(e),
        }),
      );
    });
    client.on(Events.ShardDisconnect, (event) =>
      this.ctx.log('warn', 'discord gateway disconnected', { channel: this.name, code: event.code }),
    );
    client.on(Events.ShardResume, () =>
      this.ctx.log('info', 'discord gateway resumed', { channel: this.name }),
    );
    client.on(Events.Error, (e) =>
      this.ctx.log('error', 'discord client error', { channel: this.name, error: errorMessage(e) }),
    );
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no READY from the Discord gateway within ${this.readyTimeoutMs} ms`)),
        this.readyTimeoutMs,
      );
      client.once(Events.ClientReady, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    try {
      await client.login(token);
      await ready;
    } catch (e) {
      await client.destroy().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      // discord.js: TokenInvalid (401 on GET /gateway/bot) or gateway close 4004.
      const bad = e instanceof Error && /token/i.test(e.message);
      throw new HvError(
        'adapter-failed',
        bad
          ? `Discord rejected the bot token; put a valid bot token in ${this.channel.tokenFile}`
          : `cannot connect to the Discord gateway: ${errorMessage(e)}`,
        { permanent: bad },
      );
    }
    this.ctx.log('info', 'discord adapter started', { channel: this.name, guild: guildId });
  }

  private registrationHint(e: unknown): string {
    const { applicationId, guildId, tokenFile } = this.channel;
    if (e instanceof DiscordAPIError) {
      if (e.status === 401)
        return `Discord rejected the bot token (401); put a valid bot token in ${tokenFile}`;
      if (e.status === 403)
        return `cannot register /hv in guild ${guildId} for application ${applicationId} (${e.code} ${e.message}); invite the bot with the applications.commands scope and check applicationId and guildId`;
    }
    return `cannot register /hv in guild ${guildId}: ${errorMessage(e)}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.destroy();
  }

  /** Rebuilds the Reply of a request from its address, e.g. after a daemon restart. */
  replyFor(address: ReplyAddress): Reply | undefined {
    if (address.channel !== this.name || !isReplyData(address.data)) return undefined;
    this.token();
    return this.makeReply({ ...address.data });
  }

  private makeReply(data: DiscordReplyData): DiscordReply {
    return new DiscordReply(this.replyRest, data, this.ctx, this.ctx.config.host, this.name, this.settled);
  }

  private async onInteraction(interaction: Interaction): Promise<void> {
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
      channelId: interaction.channelId ?? this.channel.channelId,
      userId: interaction.user.id,
      command,
      tokenExpiresAt: this.ctx.now().getTime() + this.tokenTtlMs,
    };
  }

  private async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    // Acknowledge first: Discord allows 3 s, and the bus may take its time to authorise and audit.
    try {
      await interaction.deferReply();
    } catch (e) {
      // 10062: too late, Discord already told the user it failed; running it now would surprise.
      if (e instanceof DiscordAPIError && Number(e.code) === 10062) {
        this.ctx.log('warn', 'discord interaction expired before it was acknowledged', {
          interaction: interaction.id,
        });
        return;
      }
      // 40060 (already acknowledged): a replayed delivery; the bus recognises the request id.
      if (!(e instanceof DiscordAPIError && Number(e.code) === 40060)) throw e;
    }
    const bus = this.requireBus();
    const { command, argv } = argvOf(interaction);
    const reply = this.makeReply(this.replyData(interaction, 'command', command));
    const actor = actorOf(interaction);
    const outcome = await bus.submit(
      { id: interaction.id, command, argv, actor, replyTo: reply.address() },
      reply,
    );
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
    const bus = this.requireBus();
    const actor = actorOf(interaction);
    const reply = this.makeReply(this.replyData(interaction, 'component', command));
    if (!confirm) {
      try {
        await bus.cancel(token, actor, reply);
      } catch (e) {
        await reply.refused(errorMessage(e));
        return;
      }
      // A refused cancel (not the requester nor an admin, used token) was shown by the bus.
      if (reply.refusals > 0) return;
      this.settled.add(token);
      await reply.note(`hv ${command}: cancelled`, `Cancelled by <@${interaction.user.id}>.`);
      return;
    }
    // Settled while the bus decides, so an expiry timer firing meanwhile cannot close the prompt.
    this.settled.add(token);
    const outcome = await bus.confirm(token, actor, reply).catch((e: unknown) => {
      this.settled.delete(token);
      throw e;
    });
    if (outcome.kind !== 'accepted' && outcome.kind !== 'duplicate') this.settled.delete(token);
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
        await reply.note(`hv ${command} on ${this.ctx.config.host}: started`, `${who} Working…`, {
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

  private requireBus(): CommandBus {
    if (!this.bus) throw new Error('discord adapter has no command bus (start was not called)');
    return this.bus;
  }

  /** Test helper: the logged-in client (undefined before start / after stop). */
  get gatewayClient(): Client | undefined {
    return this.client;
  }
}

export const discord: AdapterFactory = {
  type: 'discord',
  create(channel, ctx): ChannelAdapter {
    return new DiscordAdapter(channel as DiscordChannel, ctx);
  },
};
