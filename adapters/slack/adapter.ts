import { App, LogLevel, type SlashCommand, SocketModeReceiver, webApi } from '@slack/bolt';
import type {
  AdapterHost,
  CommandBus,
  CommandRequest,
  Evidence,
  Reply,
  ReplyAddress,
} from '../../src/bus/types.js';
import type { HvEvent } from '../../src/events.js';
import {
  type AdapterContext,
  type ChannelAdapter,
  type Delivery,
  DeliveryError,
} from '../../src/ports/channel.js';
import { CANCEL_ACTION, CONFIRM_ACTION, esc, KEEP_ACTION, unesc } from './blocks.js';
import { type SignedContext, SlackHttpReceiver } from './http-receiver.js';
import { postNotification } from './notify.js';
import { replyData, SlackReply } from './reply.js';
import { clickTeam, commandOfText, slackActorId, slashRequestId } from './request.js';
import type { SlackChannel } from './schema.js';

type WebClient = InstanceType<typeof webApi.WebClient>;

/** A Slack Web API failure in words an admin can act on, and whether a retry can help. */
export function describeSlackError(
  e: unknown,
  cfg: SlackChannel,
): { message: string; retryAfterMs?: number; permanent: boolean } {
  const err = e as {
    code?: string;
    retryAfter?: number;
    statusCode?: number;
    data?: { error?: string };
    message?: string;
  };
  const name = cfg.name ?? 'slack';
  if (err.code === webApi.ErrorCode.RateLimitedError)
    return {
      message: `slack channel "${name}": rate limited by Slack`,
      retryAfterMs: (err.retryAfter ?? 1) * 1000,
      permanent: false,
    };
  if (err.code === webApi.ErrorCode.PlatformError) {
    const code = err.data?.error ?? 'unknown_error';
    if (
      [
        'invalid_auth',
        'not_authed',
        'account_inactive',
        'token_revoked',
        'token_expired',
        'not_allowed_token_type',
      ].includes(code)
    )
      return {
        message: `slack channel "${name}": Slack rejected the bot token in ${cfg.botTokenFile} (${code}); put the app's Bot User OAuth Token (xoxb-…) in that file`,
        permanent: true,
      };
    if (['channel_not_found', 'not_in_channel', 'is_archived'].includes(code))
      return {
        message: `slack channel "${name}": cannot post to channel ${cfg.channel} (${code}); set "channel" to a channel ID (C…) and invite the bot there`,
        permanent: true,
      };
    return {
      message: `slack channel "${name}": Slack answered ${code}`,
      permanent: code === 'invalid_blocks' || code === 'msg_too_long',
    };
  }
  if (err.code === webApi.ErrorCode.HTTPError)
    return {
      message: `slack channel "${name}": Slack answered HTTP ${err.statusCode ?? '?'}`,
      permanent: false,
    };
  return { message: `slack channel "${name}": ${err.message ?? String(e)}`, permanent: false };
}

/**
 * The Slack channel: notifications as Block Kit messages (`deliver`), and when the daemon starts it,
 * `/hv` commands over Socket Mode (default; outbound WebSocket only) or HTTP (`/slack/events`,
 * signed requests only) handed to the command bus.
 */
export class SlackAdapter implements ChannelAdapter {
  readonly type = 'slack';
  readonly name: string;
  private app: App | undefined;
  private socket: SocketModeReceiver['client'] | undefined;
  private host: AdapterHost | undefined;
  /** Bumped by each reconnect and by stop: an older reconnect loop gives up. */
  private generation = 0;
  private notifier: WebClient | undefined;
  private replier: WebClient | undefined;

  constructor(
    private readonly cfg: SlackChannel,
    private readonly ctx: AdapterContext,
  ) {
    this.name = cfg.name ?? 'slack';
  }

  private token(): string {
    return this.ctx.readSecret(this.cfg.botTokenFile);
  }

  private clientOptions() {
    return this.cfg.apiUrl ? { slackApiUrl: this.cfg.apiUrl } : {};
  }

  /** For notifications: no retries of its own; a 429 goes back to the outbox with its Retry-After. */
  private notifyClient(): WebClient {
    this.notifier ??= new webApi.WebClient(this.token(), {
      ...this.clientOptions(),
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
      // No longer than the outbox's bound on one attempt: no request outlives the attempt it
      // belongs to (the retry then finds the post by its metadata).
      timeout: Math.min(15_000, (this.cfg.timeoutSec ?? this.ctx.config.notify.timeoutSec) * 1000),
      logLevel: webApi.LogLevel.ERROR,
    });
    return this.notifier;
  }

  /** For command threads: a few quick retries, waits out rate limits. */
  private replyClient(): WebClient {
    this.replier ??= new webApi.WebClient(this.token(), {
      ...this.clientOptions(),
      retryConfig: { retries: 3, factor: 2, minTimeout: 200, maxTimeout: 5_000 },
      timeout: 15_000,
      logLevel: webApi.LogLevel.ERROR,
    });
    return this.replier;
  }

  /** Posts a notification at most once per delivery id (see postNotification). */
  async deliver(event: HvEvent, delivery: Delivery): Promise<void> {
    let client: WebClient;
    try {
      client = this.notifyClient();
    } catch (e) {
      throw new DeliveryError(`slack channel "${this.name}": ${(e as Error).message}`, undefined, true);
    }
    try {
      await postNotification(client, this.cfg.channel, event, delivery, this.ctx.log);
    } catch (e) {
      const d = describeSlackError(e, this.cfg);
      throw new DeliveryError(d.message, d.retryAfterMs, d.permanent);
    }
  }

  /** A Reply for an address this adapter made (after a daemon restart). */
  replyFor(address: ReplyAddress): Reply | undefined {
    if (address.channel !== this.name) return undefined;
    return new SlackReply(this.replyClient(), this.name, replyData(address.data));
  }

  /** Check the bot token (auth.test); the error says what to fix. */
  async check(): Promise<{ botUserId?: string; botId?: string }> {
    try {
      const r = await this.notifyClient().auth.test();
      return { botUserId: r.user_id, botId: r.bot_id };
    } catch (e) {
      throw new Error(describeSlackError(e, this.cfg).message);
    }
  }

  async start(host: AdapterHost): Promise<void> {
    const { bus } = host;
    this.host = host;
    this.generation++;
    // bolt calls auth.test on every event unless it is given the bot's ids (or verifies the token
    // itself at construction, which we do here with a clear error instead).
    const ids = await this.check();
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (...m: unknown[]) =>
        this.ctx.log('warn', 'slack client warning', { channel: this.name, detail: m.map(String).join(' ') }),
      error: (...m: unknown[]) =>
        this.ctx.log('error', 'slack client error', { channel: this.name, detail: m.map(String).join(' ') }),
      setLevel: () => {},
      getLevel: () => LogLevel.WARN,
      setName: () => {},
    };
    const token = this.token();
    if (this.cfg.mode === 'http') {
      // No signing secret here: the engine verifies each request (bus.verify, and again on submit).
      const receiver = new SlackHttpReceiver({
        channel: this.name,
        port: this.cfg.port,
        address: this.cfg.address,
        maxBodyBytes: this.cfg.maxBodyBytes,
        maxConnections: this.cfg.maxConnections,
        verify: (evidence) => bus.verify(this.name, evidence),
        log: this.ctx.log,
      });
      this.app = new App({
        token,
        receiver,
        clientOptions: this.clientOptions(),
        logger,
        tokenVerificationEnabled: false,
        ...ids,
      });
    } else {
      const receiver = new SocketModeReceiver({
        appToken: this.ctx.readSecret(this.cfg.appTokenFile as string),
        logger,
        installerOptions: { clientOptions: this.clientOptions() },
        customPropertiesExtractor: (args) => ({ envelopeId: (args as { envelope_id?: string }).envelope_id }),
      });
      // Every Socket Mode `hello` (the first, bolt's own reconnects, ours) is a fresh connection.
      this.socket = receiver.client;
      receiver.client.on('connected', () => this.host?.connected?.('Slack Socket Mode hello'));
      this.app = new App({
        token,
        receiver,
        clientOptions: this.clientOptions(),
        logger,
        tokenVerificationEnabled: false,
        ...ids,
      });
    }
    this.route(this.app, bus);
    try {
      await this.app.start();
    } catch (e) {
      const app = this.app;
      this.app = undefined;
      await app.stop().catch(() => {});
      const what =
        this.cfg.mode === 'http'
          ? `cannot listen on ${this.cfg.address} port ${this.cfg.port}`
          : `cannot open the Socket Mode connection; check the app-level token (xapp-…, scope connections:write) in ${this.cfg.appTokenFile}`;
      throw new Error(`slack channel "${this.name}": ${what}: ${(e as Error).message}`);
    }
    this.ctx.log('info', 'slack intake started', { channel: this.name, mode: this.cfg.mode });
  }

  async stop(): Promise<void> {
    this.generation++;
    const app = this.app;
    this.app = undefined;
    this.socket = undefined;
    await app?.stop();
  }

  /**
   * Drop the Socket Mode connection and open a new one (its `hello` is reported by the listener in
   * `start`); retried with backoff until it connects or the adapter stops. HTTP mode has no
   * connection to renew: a successful auth.test with the bot token shows the host reaches Slack.
   */
  async reconnect(): Promise<void> {
    const generation = ++this.generation;
    const current = () => generation === this.generation && this.app !== undefined;
    const retry = async (attempt: () => Promise<void>, what: string) => {
      for (let delay = 1000; current(); delay = Math.min(delay * 2, 30_000)) {
        try {
          await attempt();
          return;
        } catch (e) {
          this.ctx.log('warn', 'slack reconnect failed; retrying', {
            channel: this.name,
            what,
            error: errorText(e),
            retryInMs: delay,
          });
          await sleep(delay);
        }
      }
    };
    if (this.cfg.mode === 'http') {
      void retry(async () => {
        await this.check();
        if (current()) this.host?.connected?.('Slack Web API auth.test (HTTP mode)');
      }, 'auth.test');
      return;
    }
    const client = this.socket;
    if (!client) return;
    this.ctx.log('info', 'slack reconnecting', { channel: this.name });
    // A peer that no longer answers cannot complete the close handshake: do not wait for it long.
    await Promise.race([client.disconnect().catch(() => undefined), sleep(5000)]);
    void retry(async () => {
      await client.start();
    }, 'socket mode');
  }

  private route(app: App, bus: CommandBus): void {
    app.error(async (e) => {
      this.ctx.log('error', 'slack handler failed', { channel: this.name, error: e.message });
    });

    // HTTP mode: the signed request (SlackHttpReceiver puts it in the context) goes to the bus,
    // which checks it against what the request says. Socket Mode has none.
    const evidenceOf = (context: Record<string, unknown>) => (context as SignedContext).evidence;

    app.command(/.*/, async ({ command, ack, context }) => {
      await ack();
      await this.onCommand(bus, command, context.envelopeId as string | undefined, evidenceOf(context));
    });

    app.action(CONFIRM_ACTION, async ({ ack, body, action, context }) => {
      await ack();
      await this.onClick(
        bus,
        body as unknown as ClickBody,
        (action as { value?: string }).value ?? '',
        'confirm',
        evidenceOf(context),
      );
    });
    app.action(CANCEL_ACTION, async ({ ack, body, action, context }) => {
      await ack();
      await this.onClick(
        bus,
        body as unknown as ClickBody,
        (action as { value?: string }).value ?? '',
        'cancel',
        evidenceOf(context),
      );
    });
    // Keep, in a confirmation window's notice: the engine decides who may (requester or admin).
    app.action(KEEP_ACTION, async ({ ack, body, action, context }) => {
      await ack();
      await this.onClick(
        bus,
        body as unknown as ClickBody,
        (action as { value?: string }).value ?? '',
        'keep',
        evidenceOf(context),
      );
    });
  }

  private async onCommand(
    bus: CommandBus,
    command: SlashCommand,
    envelopeId: string | undefined,
    evidence: Evidence | undefined,
  ): Promise<void> {
    const { command: name, argv } = commandOfText(command.text);
    const reply = new SlackReply(this.replyClient(), this.name, {
      channel: command.channel_id,
      user: command.user_id,
      team: command.team_id,
      command: [name, ...argv].join(' '),
      responseUrl: command.response_url,
    });
    const req: CommandRequest = {
      id: slashRequestId(command.team_id, command.trigger_id),
      ...(envelopeId ? { dedupeKeys: [`slack-envelope:${envelopeId}`] } : {}),
      command: name,
      argv,
      actor: {
        channel: 'slack',
        id: slackActorId(command.team_id, command.user_id),
        display: command.user_name,
      },
      replyTo: reply.address(),
      ...(evidence ? { evidence } : {}),
    };
    // The bus shows what it decided through the reply; the outcome is not shown again.
    await bus.submit(req, reply);
  }

  private async onClick(
    bus: CommandBus,
    body: ClickBody,
    token: string,
    kind: 'confirm' | 'cancel' | 'keep',
    evidence: Evidence | undefined,
  ): Promise<void> {
    const channel = body.channel?.id ?? body.container?.channel_id ?? '';
    const messageTs = body.message?.ts ?? body.container?.message_ts;
    const threadTs = body.message?.thread_ts ?? body.container?.thread_ts ?? messageTs;
    const user = body.user.id;
    const team = clickTeam(body);
    const actor = {
      channel: 'slack' as const,
      id: slackActorId(team, user),
      display: body.user.username ?? body.user.name,
    };
    const reply = new SlackReply(this.replyClient(), this.name, {
      channel,
      user,
      team,
      command: commandOf(body.message?.text),
      threadTs,
      responseUrl: body.response_url,
      promptTs: messageTs,
      promptText: body.message?.text ?? '',
      settledNote:
        kind === 'confirm' ? `Confirmed by <@${esc(user)}>; running.` : `Cancelled by <@${esc(user)}>.`,
    });
    if (kind === 'confirm') await bus.confirm(token, actor, reply, evidence);
    else if (kind === 'cancel') await bus.cancel(token, actor, reply, evidence);
    else if (bus.keep) await bus.keep(token, actor, reply, evidence);
    else await reply.refused('This hv cannot take Keep clicks.');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

interface ClickBody {
  response_url?: string;
  user: { id: string; team_id?: string; username?: string; name?: string };
  team?: { id: string } | null;
  channel?: { id: string };
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
  message?: { ts?: string; thread_ts?: string; text?: string };
}

/** `Confirm hv system-upgrade …?` → `system-upgrade …`, for the thread's parent text. */
function commandOf(text: string | undefined): string {
  // Slack hands back the prompt's text as posted, i.e. escaped; the reply escapes it again.
  return /hv ([^?\n]+)\?/.exec(unesc(text ?? ''))?.[1] ?? 'command';
}
