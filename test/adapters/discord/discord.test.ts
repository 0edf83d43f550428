import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordAdapter } from '../../../adapters/discord/index.js';
import { LIMITS } from '../../../adapters/discord/render.js';
import { channelTypes } from '../../../adapters/registry.js';
import { isHvError } from '../../../src/errors.js';
import { makeEvent } from '../../../src/notify/events.js';
import { DeliveryError } from '../../../src/ports/channel.js';
import { createServices, readSecret } from '../../../src/services.js';
import { DISCORD_IDS } from '../../peers/discord-peer.js';
import { FakeBus, longText, makePrompt, makeResult, poll } from '../chat-contract.js';
import { type DiscordWorld, messageText, startDiscord } from './harness.js';

let w: DiscordWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const fake = (world: DiscordWorld) => world.bus as FakeBus;
const notice = (title: string, data: Record<string, unknown> = {}) =>
  makeEvent('test.failed', { host: 'hv01', key: randomUUID(), title, data, next: 'hv status' });

describe('discord adapter: registration and identity', () => {
  it('registers /hv in the guild for admins only, with every chat command and its options', async () => {
    w = await startDiscord();
    expect(w.peer.commandWrites).toHaveLength(1);
    const write = w.peer.commandWrites[0]!;
    expect(write.guildId).toBe(DISCORD_IDS.guild);
    expect(write.commands).toHaveLength(1);
    const hv = write.commands[0] as {
      name: string;
      default_member_permissions: string;
      options: { type: number; name: string; options?: Record<string, unknown>[] }[];
    };
    expect(hv.name).toBe('hv');
    expect(hv.default_member_permissions).toBe('8');
    // Every command chat may run (audit and daemon are CLI-only), from the registry.
    expect(hv.options.map((o) => o.name).sort()).toEqual(
      [
        'check-updates',
        'confirm',
        'diff',
        'help',
        'notify',
        'rollback',
        'schedule',
        'status',
        'system-upgrade',
        'upgrade-test',
      ].sort(),
    );
    expect(hv.options.every((o) => o.type === 1)).toBe(true);
    const options = (name: string) => hv.options.find((o) => o.name === name)?.options;
    expect(options('rollback')).toEqual([
      expect.objectContaining({ name: 'to', type: 4, required: false, min_value: 1 }),
    ]);
    expect(options('upgrade-test')).toContainEqual(
      expect.objectContaining({ name: 'allow-downgrade', type: 5, required: false }),
    );
    // Release upgrades from chat: /hv upgrade-test release:25.05 (a string option).
    expect(options('upgrade-test')).toContainEqual(
      expect.objectContaining({ name: 'release', type: 3, required: false }),
    );
    expect(options('notify')).toEqual([
      expect.objectContaining({
        name: 'action',
        type: 3,
        choices: ['test', 'list', 'retry'].map((c) => ({ name: c, value: c })),
      }),
      expect.objectContaining({ name: 'channel', type: 3 }),
    ]);
    // Required options first, as Discord demands; integers with their bounds.
    expect(options('schedule')?.[0]).toMatchObject({ name: 'action', required: true });
    expect(options('schedule')).toContainEqual(
      expect.objectContaining({ name: 'count', type: 4, min_value: 1, max_value: 1000 }),
    );
    for (const o of hv.options) {
      expect(String((o as { description?: string }).description).length).toBeLessThanOrEqual(100);
      for (const x of o.options ?? []) {
        expect(String(x.name)).toMatch(/^[-a-z0-9_]{1,32}$/);
        expect(String(x.description).length).toBeGreaterThan(0);
        expect(String(x.description).length).toBeLessThanOrEqual(100);
      }
    }
    expect(w.peer.identifies).toBe(1);
  });

  it('sends the Discord identity: user id and the member roles as groups', async () => {
    w = await startDiscord();
    w.command(w.admin, 'status');
    const sub = await fake(w).waitForSubmit();
    expect(sub.req.actor).toMatchObject({
      channel: 'discord',
      id: `user:${DISCORD_IDS.admin}`,
      display: 'admin',
      groups: [`role:${DISCORD_IDS.adminRole}`],
    });
    expect(sub.req.replyTo.channel).toBe('discord');
  });

  it('a bad token fails start with what to fix, and the token is never in the message or logs', async () => {
    w = await startDiscord({ noStart: true });
    writeFileSync(w.channel.tokenFile, 'not-the-token-s3cr3t\n');
    const adapter = new DiscordAdapter(
      w.channel,
      { config: w.config, runner: undefined as never, now: () => new Date(), readSecret, log: () => {} },
      { readyTimeoutMs: 5_000 },
    );
    const err = await adapter.start({ bus: new FakeBus() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await adapter.stop();
    expect(isHvError(err) && err.code).toBe('adapter-failed');
    expect(String((err as Error).message)).toContain(w.channel.tokenFile);
    expect(String((err as Error).message)).not.toContain('s3cr3t');
    expect(JSON.stringify(w.logs)).not.toContain('s3cr3t');
  });

  it('Discord unreachable at start (503s): start returns, the adapter connects in the background', async () => {
    w = await startDiscord({ noStart: true, adapter: { retryMs: 200 } });
    // discord.js retries a 5xx three times itself: four failures make the first attempt fail.
    w.peer.failNext('PUT /applications/:app/guilds/:guild/commands', { status: 503, times: 4 });
    await w.adapter.start({ bus: w.bus });
    expect(w.peer.identifies).toBe(0);
    expect(w.logs.some((l) => l.msg === 'discord unreachable at start; retrying in the background')).toBe(
      true,
    );
    await w.peer.waitForSession({}, { timeoutMs: 10_000 });
    expect(w.peer.commandWrites).toHaveLength(1);
    const sent = w.command(w.admin, 'status');
    expect((await w.peer.waitForCallback(sent.id)).accepted).toBe(true);
  });

  it('gatewayUrl overrides the gateway address the REST API announces', async () => {
    w = await startDiscord({ channel: (peer) => ({ gatewayUrl: `${peer.gatewayUrl}/via-override` }) });
    expect(w.peer.gatewayConnections[0]?.path).toBe('/via-override');
  });
});

describe('discord adapter: replies', () => {
  it('a refusal is shown only to the requester: the public "thinking" message goes away', async () => {
    w = await startDiscord();
    fake(w).onSubmit = () => ({ kind: 'refused', reason: 'not authorised.' });
    const sent = w.command(w.outsider, 'status');
    expect((await w.peer.waitForCallback(sent.id)).latencyMs).toBeLessThan(3_000);
    const followUp = await poll(
      () => w?.related(sent.id).find((m) => m.source === 'followup'),
      'ephemeral follow-up',
    );
    expect(followUp.wire.flags).toBe(64);
    expect(messageText(followUp)).toContain('not authorised');
    const visible = w.related(sent.id).filter((m) => !m.deleted && !((m.wire.flags as number) & 64));
    expect(visible).toEqual([]);
  });

  it('progress edits one message (no flood); the result replaces it with PASSED and the facts', async () => {
    w = await startDiscord();
    const sent = w.command(w.admin, 'upgrade-test');
    const sub = await fake(w).waitForSubmit();
    await Promise.all(Array.from({ length: 20 }, (_, i) => sub.reply.progress('building', `step ${i}`)));
    await sub.reply.result(
      makeResult('passed', 'Upgrade Test: PASSED\nnixpkgs abc123 → def456\nhealth checks: 3/3 ok'),
    );
    const msgs = w.related(sent.id).filter((m) => !m.deleted);
    expect(msgs).toHaveLength(1);
    // 20 progress calls were coalesced into far fewer edits, each saying who asked.
    expect(msgs[0]!.edits).toBeLessThan(10);
    const progressEdits = w.peer.restCalls.filter(
      (c) =>
        c.method === 'PATCH' && c.path.includes(sent.token) && JSON.stringify(c.body).includes('running'),
    );
    expect(progressEdits.length).toBeGreaterThan(0);
    expect(JSON.stringify(progressEdits[0]!.body)).toContain(`Requested by <@${DISCORD_IDS.admin}>`);
    const text = messageText(msgs[0]!);
    expect(text).toContain('PASSED');
    expect(text).toContain('def456');
    expect(msgs[0]!.wire.components).toEqual([]);
  });

  it('a very long result still fits one valid message', async () => {
    w = await startDiscord();
    const sent = w.command(w.admin, 'status');
    const sub = await fake(w).waitForSubmit();
    await sub.reply.result(makeResult('ok', longText(9_000)));
    const [msg] = w.related(sent.id);
    expect(messageText(msg!)).toContain('line 0000');
    const embeds = msg!.wire.embeds as { description: string }[];
    expect(embeds.reduce((n, e) => n + e.description.length, 0)).toBeLessThanOrEqual(LIMITS.embedTotal);
  });

  it('after 15 minutes the reply continues in a channel message and the result mentions the requester', async () => {
    w = await startDiscord();
    const sent = w.command(w.admin, 'upgrade-test');
    const sub = await fake(w).waitForSubmit();
    await sub.reply.progress('building');
    const before = w.peer.restCalls.length;
    w.advanceClock(15 * 60_000);
    await sub.reply.progress('activating');
    await sub.reply.progress('health checks');
    await sub.reply.result(makeResult('passed', 'Upgrade Test: PASSED'));
    const calls = w.peer.restCalls.slice(before);
    expect(calls.some((c) => c.path.startsWith('/webhooks/'))).toBe(false);
    const channelMsgs = w.peer.messagesIn(DISCORD_IDS.channel).filter((m) => m.source === 'channel');
    expect(channelMsgs).toHaveLength(2);
    expect(messageText(channelMsgs[0]!)).toContain('health checks');
    expect(channelMsgs[0]!.edits).toBe(1);
    expect(channelMsgs[1]!.wire.content).toContain(`<@${DISCORD_IDS.admin}>`);
    expect(messageText(channelMsgs[1]!)).toContain('PASSED');
    // The reply knows where it continued, so a restart edits the same channel message.
    const addr = (sub.reply as { address?: () => { data: Record<string, unknown> } }).address?.();
    expect(addr?.data.messageId).toBe(channelMsgs[0]!.id);
    expect(w.related(sent.id)[0]?.wire).toMatchObject({ embeds: [expect.anything()] });
  });

  it('replyFor rebuilds a reply after a restart: the result edits the original message', async () => {
    w = await startDiscord();
    const sent = w.command(w.admin, 'upgrade-test');
    const sub = await fake(w).waitForSubmit();
    await sub.reply.progress('building');
    await w.adapter.stop();
    // A new daemon: a fresh adapter, not even logged in to the gateway.
    const ctx = {
      config: w.config,
      runner: undefined as never,
      now: () => new Date(),
      readSecret,
      log: () => {},
    };
    const again = new DiscordAdapter(w.channel, ctx);
    const stored = JSON.parse(JSON.stringify(sub.req.replyTo));
    expect(again.replyFor({ channel: 'slack', data: stored.data })).toBeUndefined();
    const reply = again.replyFor(stored);
    expect(reply).toBeDefined();
    await reply!.result(makeResult('failed', 'Upgrade Test: FAILED\nlibvirtd inactive; reverted'));
    const [msg] = w.related(sent.id);
    expect(messageText(msg!)).toContain('FAILED');
    expect(messageText(msg!)).toContain('libvirtd inactive');
  });

  it('an unanswered prompt is closed when it expires; a confirmed one is left alone', async () => {
    w = await startDiscord();
    const soon = () => ({
      ...makePrompt('system-upgrade'),
      expiresAt: new Date(Date.now() + 400).toISOString(),
    });
    fake(w).onSubmit = () => ({ kind: 'needs-confirmation', prompt: soon() });
    const unanswered = w.command(w.admin, 'system-upgrade');
    const answered = w.command(w.admin, 'system-upgrade');
    const promptOf = (id: string) =>
      poll(() => w?.related(id).find((m) => ((m.wire.components as unknown[]) ?? []).length > 0), 'prompt');
    const [a, b] = [await promptOf(unanswered.id), await promptOf(answered.id)];
    const confirmId = (b.wire.components as { components: { custom_id: string }[] }[])[0]!.components[0]!
      .custom_id;
    const c = w.peer.sendInteraction({
      type: 3,
      data: { custom_id: confirmId },
      message: { id: b.id },
      member: { user: w.admin.member.user, roles: w.admin.member.roles ?? [] },
    });
    await w.peer.waitForCallback(c.id);
    // What the bus's runner says first when it starts the confirmed operation.
    const click = await fake(w).waitForConfirm(0);
    await click.reply.progress('started', 'operation op-1');
    await poll(() => messageText(b).includes('Confirmed by'), 'confirmed note');
    await poll(() => messageText(a).includes('confirmation expired'), 'expired note', 3_000);
    expect(a.wire.components).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(messageText(b)).not.toContain('expired');
  });

  it('a bus failure is shown to the requester instead of an endless "thinking"', async () => {
    w = await startDiscord();
    fake(w).onSubmit = () => {
      throw new Error('state dir not writable');
    };
    const sent = w.command(w.admin, 'status');
    const followUp = await poll(
      () => w?.related(sent.id).find((m) => m.source === 'followup'),
      'error shown to the requester',
    );
    expect(messageText(followUp)).toContain('state dir not writable');
    await poll(() => w?.logs.some((l) => l.msg === 'discord interaction failed'), 'the error logged');
  });

  it('cancel: the click reaches bus.cancel with the clicker and the prompt is closed', async () => {
    w = await startDiscord();
    const prompt = makePrompt('system-upgrade');
    fake(w).onSubmit = () => ({ kind: 'needs-confirmation', prompt });
    const sent = w.command(w.admin, 'system-upgrade');
    const msg = await poll(
      () => w?.related(sent.id).find((m) => ((m.wire.components as unknown[]) ?? []).length > 0),
      'prompt',
    );
    const buttons = (msg.wire.components as { components: { custom_id: string; label: string }[] }[])[0]!
      .components;
    expect(buttons.map((b) => b.label)).toEqual(['Confirm', 'Cancel']);
    expect(buttons.every((b) => b.custom_id.length <= LIMITS.customId)).toBe(true);
    w.peer.sendInteraction({
      type: 3,
      data: { custom_id: buttons[1]!.custom_id },
      message: { id: msg.id },
      member: { user: w.admin.member.user, roles: w.admin.member.roles ?? [] },
    });
    await poll(() => fake(w!).cancels[0], 'cancel');
    expect(fake(w).cancels[0]).toMatchObject({
      token: prompt.token,
      actor: { id: `user:${DISCORD_IDS.admin}` },
    });
    await poll(() => messageText(msg).includes('Cancelled'), 'cancelled note');
    expect(msg.wire.components).toEqual([]);
  });
});

describe('discord adapter: approvals and ack latency', () => {
  it('with two approvals needed, the first admin click keeps the buttons for the next admin', async () => {
    w = await startDiscord();
    const prompt = { ...makePrompt('rollback', ['--to', '3']), approvalsNeeded: 2 };
    fake(w).onSubmit = () => ({ kind: 'needs-confirmation', prompt });
    let clicks = 0;
    fake(w).onConfirm = () =>
      ++clicks === 1
        ? { kind: 'awaiting-approval', approvalsNeeded: 1 }
        : { kind: 'accepted', operationId: 'op' };
    const sent = w.command(w.admin, 'rollback', ['--to', '3']);
    const msg = await poll(
      () => w?.related(sent.id).find((m) => ((m.wire.components as unknown[]) ?? []).length > 0),
      'prompt',
    );
    expect(messageText(msg)).toContain('Needs 2 different admins');
    const confirmId = (msg.wire.components as { components: { custom_id: string }[] }[])[0]!.components[0]!
      .custom_id;
    const first = w.peer.sendInteraction({
      type: 3,
      data: { custom_id: confirmId },
      message: { id: msg.id },
      member: { user: w.admin.member.user, roles: w.admin.member.roles ?? [] },
    });
    await w.peer.waitForCallback(first.id);
    await poll(() => messageText(msg).includes('1 more admin must approve'), 'waiting note');
    expect(messageText(msg)).toContain('Confirm');
    const confirmSub = await fake(w).waitForConfirm(0);
    expect(confirmSub.token).toBe(prompt.token);
  });

  it('50 concurrent /hv status are all deferred within 3 s (figures printed)', async () => {
    w = await startDiscord();
    const world = w;
    const sent = Array.from({ length: 50 }, () => world.command(world.admin, 'status'));
    const latencies = (await Promise.all(sent.map((s) => world.peer.waitForCallback(s.id)))).map(
      (c) => c.latencyMs,
    );
    latencies.sort((a, b) => a - b);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    console.log(
      `discord ack latency over 50 concurrent /hv status: p50 ${p(0.5).toFixed(1)} ms, p99 ${p(0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
    );
    expect(p(0.99)).toBeLessThan(3_000);
    await fake(w).waitForSubmit(49);
  });
});

describe('discord adapter: gateway outage', () => {
  it('the gateway drops during an operation: the client resumes, missed commands arrive, the result is delivered', async () => {
    w = await startDiscord({});
    const sent = w.command(w.admin, 'upgrade-test');
    const sub = await fake(w).waitForSubmit();
    await sub.reply.progress('building');
    w.peer.dropGateway();
    // While the socket is down: progress still goes out over REST, and a new /hv is queued by Discord.
    await sub.reply.progress('activating');
    const missed = w.command(w.admin, 'status');
    await w.peer.waitForSession({ resumes: 1 }, { timeoutMs: 15_000 });
    await w.peer.waitForCallback(missed.id, { timeoutMs: 10_000 });
    await fake(w).waitForSubmit(1);
    await sub.reply.result(makeResult('passed', 'Upgrade Test: PASSED after the outage'));
    expect(messageText(w.related(sent.id)[0]!)).toContain('PASSED after the outage');
    expect(w.peer.identifies).toBe(1);
    expect(w.logs.some((l) => l.msg === 'discord gateway resumed')).toBe(true);
  });

  it('a non-resumable session: the client identifies again and keeps serving /hv', async () => {
    w = await startDiscord();
    w.peer.invalidateSession(false);
    await w.peer.waitForSession({ identifies: 2 }, { timeoutMs: 15_000 });
    const sent = w.command(w.admin, 'status');
    expect((await w.peer.waitForCallback(sent.id, { timeoutMs: 10_000 })).accepted).toBe(true);
  });
});

describe('discord adapter: notifications', () => {
  it('a 4,500-character notification arrives as valid embeds, nothing lost', async () => {
    w = await startDiscord({ noStart: true });
    const body = longText(4_500);
    await w.adapter.deliver(notice('Upgrade test failed on hv01', { error: body }), {
      id: randomUUID(),
      attempt: 1,
    });
    const posts = w.peer.restCalls.filter((c) => c.method === 'POST' && c.path.endsWith('/messages'));
    expect(posts.map((c) => c.status)).toEqual(posts.map(() => 200));
    const msgs = w.peer.messagesIn(DISCORD_IDS.channel);
    for (const m of msgs) {
      const embeds = m.wire.embeds as { title?: string; description?: string }[];
      expect(embeds.length).toBeLessThanOrEqual(10);
      for (const e of embeds) expect(e.description?.length ?? 0).toBeLessThanOrEqual(4096);
      expect(String(m.wire.content ?? '').length).toBeLessThanOrEqual(2000);
    }
    const text = msgs.map(messageText).join('\n');
    for (const line of body.split('\n')) expect(text).toContain(line);
    expect(text).toContain('Upgrade test failed on hv01');
  });

  it('a 20,000-character notification spans messages; a 429 midway resumes without repeating a part', async () => {
    w = await startDiscord({ noStart: true });
    const body = longText(20_000);
    const event = notice('Huge build log', { output: body });
    const delivery = { id: randomUUID(), attempt: 1 };
    // The first part goes through, the second is rate limited: inject the 429 as the second post
    // arrives (the peer records a call before it decides the answer).
    const calls = w.peer.restCalls;
    const push = calls.push.bind(calls);
    let posts = 0;
    calls.push = (...items) => {
      for (const c of items) if (c.method === 'POST' && c.path.endsWith('/messages')) posts++;
      if (posts === 2) w?.peer.failNext('POST /channels/:id/messages', { status: 429, retryAfter: 1.5 });
      return push(...items);
    };
    const first = await w.adapter.deliver(event, delivery).then(
      () => undefined,
      (e: unknown) => e,
    );
    calls.push = push;
    expect(first).toBeInstanceOf(DeliveryError);
    expect((first as DeliveryError).retryAfterMs).toBeGreaterThanOrEqual(1_500);
    expect(w.peer.messagesIn(DISCORD_IDS.channel)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1_600));
    await w.adapter.deliver(event, { ...delivery, attempt: 2 });
    const msgs = w.peer.messagesIn(DISCORD_IDS.channel);
    expect(msgs.length).toBeGreaterThanOrEqual(4);
    const text = msgs.map(messageText).join('\n');
    for (const line of body.split('\n')) expect(text.split(line).length - 1, line).toBe(1);
  });

  it('the same delivery retried by a restarted daemon is not posted twice (enforce_nonce)', async () => {
    w = await startDiscord({ noStart: true });
    const event = notice('Upgrade test failed on hv01', { error: longText(7_000) });
    const delivery = { id: randomUUID(), attempt: 1 };
    await w.adapter.deliver(event, delivery);
    const posted = w.peer.messagesIn(DISCORD_IDS.channel).length;
    expect(posted).toBe(2);
    // A new adapter (no memory of the first attempt) retries the same delivery id.
    const ctx = {
      config: w.config,
      runner: undefined as never,
      now: () => new Date(),
      readSecret,
      log: () => {},
    };
    await new DiscordAdapter(w.channel, ctx).deliver(event, { ...delivery, attempt: 2 });
    expect(w.peer.messagesIn(DISCORD_IDS.channel)).toHaveLength(posted);
    // A different delivery of the same event is a new message (the outbox decides repeats).
    await w.adapter.deliver(event, { id: randomUUID(), attempt: 1 });
    expect(w.peer.messagesIn(DISCORD_IDS.channel)).toHaveLength(posted * 2);
  });

  it('through the hub and outbox: a 429 with retry_after 2 s is retried no sooner than 2 s later, one message', async () => {
    w = await startDiscord({ noStart: true });
    const hub = await createServices(w.config, { channels: channelTypes }).hub();
    w.peer.failNext('POST /channels/:id/messages', { status: 429, retryAfter: 2 });
    await hub.publish([notice('Upgrade test failed on hv01')]);
    await poll(() => w?.peer.messagesIn(DISCORD_IDS.channel).length === 1, 'the retried message', 10_000);
    const posts = w.peer.restCalls.filter((c) => c.method === 'POST' && c.path.endsWith('/messages'));
    expect(posts.map((c) => c.status)).toEqual([429, 200]);
    expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(2_000);
  });

  it('permanent failures say what to fix (unknown channel)', async () => {
    w = await startDiscord({ noStart: true, channel: () => ({ channelId: '999' }) });
    const err = await w.adapter.deliver(notice('x'), { id: randomUUID(), attempt: 1 }).then(
      () => undefined,
      (e: unknown) => e as DeliveryError,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err?.permanent).toBe(true);
    expect(err?.message).toContain('channelId');
  });
});
