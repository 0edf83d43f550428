import { Client, DiscordAPIError, Events, GatewayIntentBits, REST, Routes } from 'discord.js';
import type { AdapterHost, CommandBus, Reply, ReplyAddress } from '../../src/bus/types.js';
import { errorMessage, HvError, isHvError } from '../../src/errors.js';
import type { HvEvent } from '../../src/events.js';
import type { AdapterContext, ChannelAdapter, ChannelFactory, Delivery } from '../../src/ports/channel.js';
import { InteractionHandler } from './interactions.js';
import { DiscordNotifier, deliveryErrorOf, restOptions } from './notify.js';
import { DiscordReply, type DiscordReplyData, isReplyData, TOKEN_TTL_MS } from './reply.js';
import type { DiscordChannel } from './schema.js';
import { hvCommandDefinition } from './slash.js';

export { deliveryErrorOf, restOptions } from './notify.js';
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
 * The Discord channel: notifications as embeds over REST, and `/hv` slash commands over an
 * outbound gateway connection (discord.js), handed to the command bus.
 */
export class DiscordAdapter implements ChannelAdapter {
  readonly type = 'discord';
  readonly name: string;
  private client: Client | undefined;
  private bus: CommandBus | undefined;
  private host: AdapterHost | undefined;
  private tokenValue: string | undefined;
  /** Notifications: a 429 throws at once (the outbox owns the backoff), no internal retries. */
  private readonly notifyRest: REST;
  private readonly notifier: DiscordNotifier;
  /** Replies: discord.js waits out rate limits on edits itself (a user is watching). */
  private readonly replyRest: REST;
  /** Confirmation tokens settled by a click, so that their prompt is not closed as expired. */
  private readonly settled = new Set<string>();
  private readonly tokenTtlMs: number;
  private readonly readyTimeoutMs: number;
  private readonly retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private handler: InteractionHandler | undefined;

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
    // No longer than the outbox's bound on one attempt: no request outlives its attempt.
    const timeout = Math.min(15_000, (channel.timeoutSec ?? ctx.config.notify.timeoutSec) * 1000);
    this.notifyRest = new REST({ ...base, rejectOnRateLimit: () => true, retries: 0, timeout });
    this.replyRest = new REST(base);
    this.notifier = new DiscordNotifier(this.notifyRest, channel);
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
    await this.notifier.deliver(event, delivery);
  }

  /**
   * Registers /hv in the guild, logs in to the gateway and hands interactions to `host.bus`. A
   * wrong token or missing access fails at once with what to fix; an unreachable Discord (network
   * not up yet at boot, 5xx) is retried in the background with backoff until `stop`.
   */
  async start(host: AdapterHost): Promise<void> {
    if (!host?.bus) throw new Error('discord adapter started without a command bus');
    this.bus = host.bus;
    this.host = host;
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
        body: [hvCommandDefinition(this.ctx.config.host, this.bus?.commands() ?? [])],
      });
    } catch (e) {
      const permanent = e instanceof DiscordAPIError && e.status >= 400 && e.status < 500 && e.status !== 429;
      throw new HvError('adapter-failed', this.registrationHint(e), { permanent });
    }
    if (this.stopped) return;
    const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: restOptions(this.channel) });
    this.client = client;
    client.on(Events.InteractionCreate, (interaction) => {
      this.interactions()
        .handle(interaction)
        .catch((e: unknown) =>
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
    client.on(Events.ShardResume, () => {
      this.ctx.log('info', 'discord gateway resumed', { channel: this.name });
      if (this.client === client) this.host?.connected?.('Discord gateway RESUMED');
    });
    // READY of a new session: the first login, a re-identify, or a reconnect asked for below.
    client.on(Events.ShardReady, () => {
      if (this.client === client) this.host?.connected?.('Discord gateway READY');
    });
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

  /**
   * Drop the gateway connection and log in again (a confirmation window opened): the new session's
   * READY is reported as a fresh connection. Unreachable: retried with backoff, as at start.
   */
  async reconnect(): Promise<void> {
    if (this.stopped || !this.bus) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const old = this.client;
    this.client = undefined;
    await old?.destroy().catch(() => undefined);
    this.ctx.log('info', 'discord reconnecting', { channel: this.name });
    this.connect().catch((e: unknown) => {
      this.ctx.log('warn', 'discord reconnect failed; retrying', {
        channel: this.name,
        error: errorMessage(e),
      });
      this.retryLater(Math.min(this.retryMs, 2000));
    });
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

  private interactions(): InteractionHandler {
    if (!this.bus) throw new Error('discord adapter has no command bus (start was not called)');
    this.handler ??= new InteractionHandler({
      bus: this.bus,
      guildId: this.channel.guildId,
      fallbackChannelId: this.channel.channelId,
      tokenTtlMs: this.tokenTtlMs,
      ctx: this.ctx,
      settled: this.settled,
      makeReply: (data) => this.makeReply(data),
    });
    return this.handler;
  }

  private makeReply(data: DiscordReplyData): DiscordReply {
    return new DiscordReply(this.replyRest, data, this.ctx, this.ctx.config.host, this.name, this.settled);
  }

  /** Test helper: the logged-in client (undefined before start / after stop). */
  get gatewayClient(): Client | undefined {
    return this.client;
  }
}

export const discord: ChannelFactory<DiscordChannel> = {
  type: 'discord',
  create(channel, ctx): ChannelAdapter {
    return new DiscordAdapter(channel, ctx);
  },
};
