import { App, type Logger, LogLevel, SocketModeReceiver } from '@slack/bolt';
import {
  ButtonStyle,
  Client,
  ComponentType,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  type Interaction,
  MessageFlags,
  type TextChannel,
} from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISCORD_IDS, DiscordPeer } from './discord-peer.js';
import { waitFor } from './http-util.js';
import { postInteractive, postSlashCommand, SlackPeer } from './slack-peer.js';

const BOT_TOKEN = 'xoxb-hv-test';
const APP_TOKEN = 'xapp-1-hv-test';
const SIGNING_SECRET = 'hv-signing-secret';

/** Keeps bolt quiet (a dropped socket logs errors by design) but keeps the lines for a failing test. */
function quietLogger(lines: string[]): Logger {
  let level = LogLevel.DEBUG;
  const keep =
    (tag: string) =>
    (...msg: unknown[]) => {
      lines.push(`${tag} ${msg.map(String).join(' ')}`);
    };
  return {
    debug: keep('debug'),
    info: keep('info'),
    warn: keep('warn'),
    error: keep('error'),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

/** Sets up /hv handlers shared by the Socket Mode and HTTP apps. */
function registerSlackHandlers(app: App, seen: { text: string; retryNum: number | undefined }[]): void {
  app.command('/hv', async ({ command, ack, respond, say, context }) => {
    seen.push({ text: command.text, retryNum: context.retryNum });
    if (command.text === 'inline') {
      await ack({ response_type: 'ephemeral', text: 'answered in the ack' });
      return;
    }
    await ack();
    await respond({ response_type: 'ephemeral', text: `working on ${command.text}` });
    try {
      await say({ text: `done: ${command.text}`, thread_ts: undefined });
    } catch (error) {
      seen.push({
        text: `say failed: ${(error as { data?: { error?: string } }).data?.error}`,
        retryNum: undefined,
      });
    }
  });
  app.event('app_mention', async ({ say }) => {
    await say('mentioned');
  });
  app.action('approve', async ({ ack, respond, body }) => {
    await ack();
    const action = (body as { actions: { value: string }[] }).actions[0];
    await respond({ replace_original: true, text: `approved ${action?.value}` });
  });
}

describe('SlackPeer with the real @slack/bolt', () => {
  let peer: SlackPeer;
  beforeAll(async () => {
    peer = await SlackPeer.start();
  });
  afterAll(async () => {
    await peer.stop();
  });

  describe('Socket Mode, configured as an adapter would', () => {
    let app: App;
    const seen: { text: string; retryNum: number | undefined }[] = [];
    const logs: string[] = [];

    beforeAll(async () => {
      app = new App({
        socketMode: true,
        appToken: APP_TOKEN,
        token: BOT_TOKEN,
        clientOptions: { slackApiUrl: peer.apiUrl },
        logger: quietLogger(logs),
      });
      registerSlackHandlers(app, seen);
      await app.start();
    });
    afterAll(async () => {
      await app.stop();
      await waitFor(() => peer.openConnections === 0, { what: 'bolt to close its socket' });
    });

    it('opens the socket through apps.connections.open with the app token', () => {
      const open = peer.callsTo('apps.connections.open');
      expect(open).toHaveLength(1);
      expect(open[0]?.token).toBe(APP_TOKEN);
      expect(peer.openConnections).toBe(1);
    });

    it('delivers a slash command that is acked within the deadline and answered', async () => {
      const ack = await peer.sendSlashCommand({ command: '/hv', text: 'status' });
      expect(ack.acked).toBe(true);
      expect(ack.latencyMs).toBeLessThan(3_000);
      const [response] = await peer.waitForResponse(ack.responseUrl!);
      expect(response?.body).toMatchObject({ text: 'working on status' });
      const post = await peer.waitForCall('chat.postMessage', (c) => c.body.text === 'done: status');
      expect(post.token).toBe(BOT_TOKEN);
      expect(post.body.channel).toBe(peer.workspace.channelId);
      expect(peer.messages.at(-1)).toMatchObject({ channel: peer.workspace.channelId, text: 'done: status' });
    });

    it('returns a payload given to ack()', async () => {
      const ack = await peer.sendSlashCommand({ text: 'inline' });
      expect(ack.payload).toMatchObject({ text: 'answered in the ack' });
    });

    it('redelivers the same envelope, as Slack retries, and the app sees it twice', async () => {
      const envelope = {
        envelope_id: 'retry-envelope-1',
        type: 'slash_commands',
        accepts_response_payload: true,
        payload: {
          command: '/hv',
          text: 'retry-me',
          user_id: peer.workspace.userId,
          team_id: peer.workspace.teamId,
          channel_id: peer.workspace.channelId,
          api_app_id: peer.workspace.appId,
          response_url: peer.newResponseUrl(),
          trigger_id: 't',
        },
      };
      const first = await peer.sendEnvelopeRaw(envelope);
      const second = await peer.sendEnvelopeRaw({ ...envelope, retry_attempt: 1, retry_reason: 'timeout' });
      expect([first.acked, second.acked]).toEqual([true, true]);
      expect(second.envelopeId).toBe(first.envelopeId);
      const retries = seen.filter((s) => s.text === 'retry-me').map((s) => s.retryNum);
      expect(retries).toEqual([undefined, 1]);
    });

    it('delivers a button click with a response_url the app can answer', async () => {
      const ack = await peer.sendInteractive({ actions: [{ action_id: 'approve', value: 'run-42' }] });
      expect(ack.acked).toBe(true);
      const [response] = await peer.waitForResponse(ack.responseUrl!);
      expect(response?.body).toMatchObject({ replace_original: true, text: 'approved run-42' });
    });

    it('injects Web API failures: an error code, then a 429 the client waits out', async () => {
      peer.failNext('chat.postMessage', { error: 'channel_not_found' });
      await peer.sendSlashCommand({ text: 'fail-once' });
      await waitFor(() => seen.find((s) => s.text === 'say failed: channel_not_found'), {
        what: 'say failure',
      });

      peer.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
      const before = peer.callsTo('chat.postMessage').length;
      await peer.sendSlashCommand({ text: 'rate-limited' });
      const ok = await peer.waitForCall(
        'chat.postMessage',
        (c) => c.body.text === 'done: rate-limited' && c.status === 200,
      );
      const attempts = peer.callsTo('chat.postMessage').slice(before);
      expect(attempts.map((c) => c.status)).toEqual([429, 200]);
      expect(ok.at - attempts[0]!.at).toBeGreaterThanOrEqual(950);
    });

    it('delivers an Events API event', async () => {
      const ack = await peer.sendEvent({
        type: 'app_mention',
        user: peer.workspace.userId,
        text: '<@U0HVBOT> status',
        channel: peer.workspace.channelId,
        ts: '1.000001',
      });
      expect(ack.acked).toBe(true);
      await peer.waitForCall('chat.postMessage', (c) => c.body.text === 'mentioned');
    });

    it('rejects unknown bot tokens with invalid_auth', async () => {
      await expect(app.client.auth.test({ token: 'xoxb-not-ours' })).rejects.toMatchObject({
        data: { ok: false, error: 'invalid_auth' },
      });
    });
  });

  it('refuses Socket Mode to an unknown app token (bolt gives up: invalid_auth is unrecoverable)', async () => {
    const app = new App({
      socketMode: true,
      appToken: 'xapp-1-not-ours',
      token: BOT_TOKEN,
      clientOptions: { slackApiUrl: peer.apiUrl },
      logger: quietLogger([]),
    });
    await expect(app.start()).rejects.toMatchObject({ data: { error: 'invalid_auth' } });
  });

  describe('Socket Mode reconnection', () => {
    let app: App;
    const seen: { text: string; retryNum: number | undefined }[] = [];
    const logs: string[] = [];

    beforeAll(async () => {
      // The client waits clientPingTimeout ms before reconnecting (default 5000); 1000 keeps this fast.
      const receiver = new SocketModeReceiver({
        appToken: APP_TOKEN,
        clientPingTimeout: 1_000,
        logger: quietLogger(logs),
        installerOptions: { clientOptions: { slackApiUrl: peer.apiUrl } },
      });
      app = new App({
        receiver,
        token: BOT_TOKEN,
        clientOptions: { slackApiUrl: peer.apiUrl },
        logger: quietLogger(logs),
      });
      registerSlackHandlers(app, seen);
      await app.start();
    });
    afterAll(async () => {
      await app.stop();
      await waitFor(() => peer.openConnections === 0, { what: 'bolt to close its socket' });
    });

    it('reconnects through apps.connections.open after the socket is dropped', async () => {
      const opened = peer.connectionsOpened;
      const opens = peer.callsTo('apps.connections.open').length;
      peer.dropConnections();
      await peer.waitForSocket(opened + 1);
      expect(peer.callsTo('apps.connections.open').length).toBe(opens + 1);
      const ack = await peer.sendSlashCommand({ text: 'after-drop' });
      expect(ack.acked).toBe(true);
    });

    it('reconnects when asked to with a disconnect message', async () => {
      const opened = peer.connectionsOpened;
      peer.sendDisconnect('refresh_requested');
      await peer.waitForSocket(opened + 1);
      await waitFor(() => peer.openConnections === 1, { what: 'the old socket to close' });
      const ack = await peer.sendSlashCommand({ text: 'after-refresh' });
      expect(ack.acked).toBe(true);
      expect(seen.map((s) => s.text)).toEqual(['after-drop', 'after-refresh']);
    });
  });

  describe('HTTP mode (signed requests to bolt’s HTTPReceiver)', () => {
    let app: App;
    let eventsUrl: string;
    const seen: { text: string; retryNum: number | undefined }[] = [];

    beforeAll(async () => {
      app = new App({
        signingSecret: SIGNING_SECRET,
        token: BOT_TOKEN,
        clientOptions: { slackApiUrl: peer.apiUrl },
        logger: quietLogger([]),
      });
      registerSlackHandlers(app, seen);
      const server = await app.start({ port: 0, host: '127.0.0.1' });
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('bolt did not listen on TCP');
      eventsUrl = `http://127.0.0.1:${address.port}/slack/events`;
    });
    afterAll(async () => {
      await app.stop();
    });

    it('accepts a correctly signed slash command and answers with the ack body', async () => {
      const res = await postSlashCommand(eventsUrl, SIGNING_SECRET, { text: 'inline' });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ text: 'answered in the ack' });
      expect(res.latencyMs).toBeLessThan(3_000);
    });

    it('accepts a signed button click and the app answers on the response_url', async () => {
      const responseUrl = peer.newResponseUrl();
      const res = await postInteractive(
        eventsUrl,
        SIGNING_SECRET,
        { actions: [{ action_id: 'approve', value: 'run-7' }] },
        { responseUrl },
      );
      expect(res.status).toBe(200);
      const [response] = await peer.waitForResponse(responseUrl);
      expect(response?.body).toMatchObject({ text: 'approved run-7' });
    });

    it('rejects a bad signature and a stale timestamp with 401', async () => {
      const bad = await postSlashCommand(eventsUrl, 'not-the-secret', { text: 'status' });
      expect(bad.status).toBe(401);
      const stale = await postSlashCommand(
        eventsUrl,
        SIGNING_SECRET,
        { text: 'status' },
        {
          timestamp: Math.floor(Date.now() / 1000) - 10 * 60,
        },
      );
      expect(stale.status).toBe(401);
      expect(seen.map((s) => s.text)).toEqual(['inline']);
    });
  });
});

describe('DiscordPeer with the real discord.js', () => {
  let peer: DiscordPeer;
  let client: Client;
  const handled: string[] = [];

  async function onInteraction(interaction: Interaction): Promise<void> {
    if (interaction.isChatInputCommand() && interaction.commandName === 'hv') {
      const sub = interaction.options.getString('action') ?? 'status';
      handled.push(`command:${sub}`);
      await interaction.deferReply();
      await interaction.editReply({
        content: `ran ${sub}`,
        components: [
          {
            type: ComponentType.ActionRow,
            components: [
              {
                type: ComponentType.Button,
                style: ButtonStyle.Primary,
                custom_id: 'approve',
                label: 'Approve',
              },
            ],
          },
        ],
      });
    } else if (interaction.isChatInputCommand() && interaction.commandName === 'hv-reply') {
      handled.push('command:reply');
      await interaction.reply({ content: 'quick answer', flags: MessageFlags.Ephemeral });
      const followUp = await interaction.followUp('more detail');
      await interaction.webhook.editMessage(followUp.id, 'more detail, edited');
    } else if (interaction.isButton()) {
      handled.push(`button:${interaction.customId}`);
      await interaction.update({ content: 'approved', components: [] });
    }
  }

  beforeAll(async () => {
    peer = await DiscordPeer.start({ heartbeatIntervalMs: 250 });
    client = new Client({
      intents: [GatewayIntentBits.Guilds],
      rest: { api: peer.apiUrl },
      // @discordjs/ws spaces IDENTIFYs 5 s apart; a no-op throttler keeps the re-identify test fast.
      ws: { buildIdentifyThrottler: () => ({ waitForIdentify: async () => undefined }) },
    });
    client.on(Events.InteractionCreate, (interaction) => {
      onInteraction(interaction).catch((error: unknown) => handled.push(`error:${String(error)}`));
    });
    const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
    await client.login(peer.token);
    await ready;
  });
  afterAll(async () => {
    await client?.destroy();
    await peer?.stop();
  });

  it('logs in: GET /gateway/bot, IDENTIFY, READY and GUILD_CREATE, uncompressed JSON v10', () => {
    expect(client.user?.id).toBe(peer.botUser.id);
    expect(client.application?.id).toBe(peer.applicationId);
    expect(client.guilds.cache.get(DISCORD_IDS.guild)?.channels.cache.has(DISCORD_IDS.channel)).toBe(true);
    expect(peer.identifies).toBe(1);
    expect(peer.gatewayConnections[0]?.query).toEqual({ v: '10', encoding: 'json' });
    expect(peer.restCalls[0]).toMatchObject({ method: 'GET', path: '/gateway/bot', authorized: true });
  });

  it('acknowledges heartbeats with the last sequence number', async () => {
    // discord.js may send its first heartbeat before READY, carrying null (no dispatch seen yet).
    const frames = () => peer.gatewayFrames;
    const readyAt = frames().findIndex((f) => f.direction === 'out' && f.t === 'READY');
    expect(readyAt).toBeGreaterThanOrEqual(0);
    const beatAt = await waitFor(
      () => {
        const i = frames().findIndex((f, index) => index > readyAt && f.direction === 'in' && f.op === 1);
        return i >= 0 ? i : undefined;
      },
      { what: 'a heartbeat after READY' },
    );
    const beat = frames()[beatAt]!;
    const lastSeq = frames()
      .slice(0, beatAt)
      .filter((f) => f.direction === 'out' && f.connection === beat.connection && f.s !== null)
      .at(-1)?.s;
    // A dispatch may still be in flight when the client beats, so it carries READY's or a later one.
    expect(typeof beat.d).toBe('number');
    expect(beat.d as number).toBeGreaterThanOrEqual(frames()[readyAt]!.s!);
    expect(beat.d as number).toBeLessThanOrEqual(lastSeq!);
    await waitFor(
      () => peer.gatewayFrames.find((f) => f.direction === 'out' && f.op === 11 && f.at >= beat.at),
      {
        what: 'its ack',
      },
    );
  });

  it('refuses a login with the wrong token (401 on GET /gateway/bot)', async () => {
    const stranger = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: peer.apiUrl } });
    await expect(stranger.login('not-the-token')).rejects.toMatchObject({ code: 'TokenInvalid' });
    await stranger.destroy();
    expect(peer.restCalls.at(-1)).toMatchObject({ path: '/gateway/bot', authorized: false, status: 401 });
  });

  it('registers guild commands with a bulk overwrite', async () => {
    await client.application!.commands.set(
      [
        {
          name: 'hv',
          description: 'hv control',
          options: [{ type: 3, name: 'action', description: 'what' }],
        },
      ],
      DISCORD_IDS.guild,
    );
    expect(peer.commandWrites).toHaveLength(1);
    expect(peer.commandWrites[0]).toMatchObject({ guildId: DISCORD_IDS.guild, commands: [{ name: 'hv' }] });
  });

  it('delivers a slash command; deferReply and editReply reach the peer', async () => {
    const sent = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ name: 'action', type: 3, value: 'status' }] },
    });
    expect(sent.payload.data).toMatchObject({ id: peer.commands.get(DISCORD_IDS.guild)?.[0]?.id });
    const callback = await peer.waitForCallback(sent.id);
    expect(callback).toMatchObject({ type: 5, accepted: true });
    expect(callback.latencyMs).toBeLessThan(3_000);
    const edit = await peer.waitForRest(
      'PATCH /webhooks/:app/:token/messages/@original',
      (c) => c.status === 200,
    );
    expect(edit.authorized).toBe(false);
    const original = peer.messages.find((m) => m.interactionId === sent.id);
    expect(original?.wire).toMatchObject({ content: 'ran status', flags: 0 });
  });

  it('delivers a button click; update() edits the message it was on', async () => {
    const original = peer.messages.find((m) => m.source === 'interaction')!;
    const sent = peer.sendInteraction({
      type: 3,
      data: { custom_id: 'approve' },
      message: { id: original.id },
    });
    const callback = await peer.waitForCallback(sent.id);
    expect(callback).toMatchObject({ type: 7, data: { content: 'approved', components: [] } });
    expect(original.wire).toMatchObject({ content: 'approved', components: [] });
  });

  it('resumes after the gateway drops and replays what was missed', async () => {
    peer.dropGateway();
    // Sent while the socket is down: Discord keeps it for the session and replays it on RESUME.
    const missed = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ name: 'action', type: 3, value: 'missed' }] },
    });
    await peer.waitForSession({ resumes: 1 });
    expect(peer.identifies).toBe(1);
    expect(peer.gatewayConnections.at(-1)?.path).toBe('/resume');
    await peer.waitForCallback(missed.id);
    const after = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ name: 'action', type: 3, value: 'after' }] },
    });
    await peer.waitForCallback(after.id);
    expect(handled).toContain('command:missed');
    expect(handled).toContain('command:after');
  });

  it('re-identifies after a non-resumable INVALID_SESSION', async () => {
    // Let discord.js finish handling RESUMED from the previous test before invalidating the session.
    await new Promise((resolve) => setTimeout(resolve, 100));
    peer.invalidateSession(false);
    await peer.waitForSession({ identifies: 2 });
    const sent = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ name: 'action', type: 3, value: 'fresh' }] },
    });
    await peer.waitForCallback(sent.id);
    expect(handled).toContain('command:fresh');
  });

  it('records reply, follow-up and follow-up edit through the interaction webhook', async () => {
    const sent = peer.sendInteraction({ type: 2, data: { name: 'hv-reply' } });
    expect(await peer.waitForCallback(sent.id)).toMatchObject({
      type: 4,
      data: { content: 'quick answer', flags: 64 },
    });
    await waitFor(() => peer.messages.find((m) => m.source === 'followup' && m.edits === 1), {
      what: 'edited follow-up',
    });
    const mine = peer.messages
      .filter((m) => m.interactionId === sent.id)
      .map((m) => [m.source, m.wire.content]);
    expect(mine).toEqual([
      ['interaction', 'quick answer'],
      ['followup', 'more detail, edited'],
    ]);
  });

  it('opens a DM channel and sends to it', async () => {
    const user = await client.users.fetch(DISCORD_IDS.admin);
    const dm = await user.send('your upgrade finished');
    expect(peer.dmChannels.get(DISCORD_IDS.admin)).toBe(dm.channelId);
    expect(peer.messagesIn(dm.channelId).map((m) => m.wire.content)).toEqual(['your upgrade finished']);
  });

  it('rejects messages over Discord limits with 400 / 50035', async () => {
    const channel = client.channels.cache.get(DISCORD_IDS.channel) as TextChannel;
    const tooLong = channel.send('x'.repeat(2001));
    await expect(tooLong).rejects.toBeInstanceOf(DiscordAPIError);
    await expect(tooLong).rejects.toMatchObject({
      status: 400,
      code: 50035,
      rawError: { errors: { content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } },
    });
    await expect(channel.send({ embeds: [{ description: 'd'.repeat(4097) }] })).rejects.toMatchObject({
      rawError: {
        errors: { embeds: { '0': { description: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } } },
      },
    });
    const sent = await channel.send('x'.repeat(2000));
    expect(peer.messagesIn(DISCORD_IDS.channel).at(-1)?.id).toBe(sent.id);
  });

  it('serves an injected 429 that discord.js waits out before retrying', async () => {
    peer.failNext('POST /channels/:id/messages', { status: 429, retryAfter: 0.3 });
    const channel = client.channels.cache.get(DISCORD_IDS.channel) as TextChannel;
    const before = peer.restCalls.length;
    await channel.send('after the rate limit');
    const attempts = peer.restCalls.slice(before).filter((c) => c.path.endsWith('/messages'));
    expect(attempts.map((c) => c.status)).toEqual([429, 200]);
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(290);
    expect(handled.filter((h) => h.startsWith('error:'))).toEqual([]);
  });
});
