import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscordAdapter } from '../../../adapters/discord/index.js';
import type { DiscordChannel } from '../../../adapters/discord/schema.js';
import { channelTypes } from '../../../adapters/registry.js';
import { commandRegistry } from '../../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import { createServices, readSecret } from '../../../src/services.js';
import { World } from '../../fixtures/world.js';
import { DISCORD_IDS, type DiscordMemberSeed, DiscordPeer } from '../../peers/discord-peer.js';
import { poll } from '../chat-contract.js';
import { messageText } from './harness.js';

/**
 * `/hv` from Discord end to end: the real discord.js client against the loopback peer, the real
 * command bus (detached operation child) and the real engine on a real Nix.
 */
const OPERATOR = '1200000000000000402';
const members: DiscordMemberSeed[] = [
  { user: { id: DISCORD_IDS.admin, username: 'admin' }, roles: [DISCORD_IDS.adminRole] },
  { user: { id: DISCORD_IDS.outsider, username: 'outsider' }, roles: [] },
  { user: { id: OPERATOR, username: 'operator' }, roles: [] },
];
const seed = (id: string) => members.find((m) => m.user.id === id) as DiscordMemberSeed;

interface AuditLine {
  actor: { channel: string; id: string };
  operation: string;
  result: string;
  requestId?: string;
}

describe('Discord /hv end to end (real bus, real engine, real Nix)', () => {
  let world: World;
  let peer: DiscordPeer;
  let bus: HostedCommandBus;
  let adapter: DiscordAdapter;
  const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
  /** The bus's clock runs ahead by this much (confirmation expiry). */
  let clockOffset = 0;

  const slash = (user: string, command: string, options: Record<string, unknown>[] = []) =>
    peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: command, options }] },
      member: { user: seed(user).user, roles: seed(user).roles ?? [] },
    });
  const click = (user: string, messageId: string, customId: string) =>
    peer.sendInteraction({
      type: 3,
      data: { custom_id: customId },
      message: { id: messageId },
      member: { user: seed(user).user, roles: seed(user).roles ?? [] },
    });
  const original = (interactionId: string) =>
    peer.messages.find((m) => m.interactionId === interactionId && m.source === 'interaction');
  const audit = (): AuditLine[] =>
    existsSync(world.paths.audit)
      ? readFileSync(world.paths.audit, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as AuditLine)
      : [];
  const generation = () => readlinkSync(world.paths.profile);

  beforeAll(async () => {
    peer = await DiscordPeer.start({ guild: { members } });
    world = new World({
      branches: ['nixos-24.05'],
      config: {
        chatops: {
          roles: {
            [`discord:user:${OPERATOR}`]: 'operator',
            [`discord:role:${DISCORD_IDS.adminRole}`]: 'admin',
          },
        },
      },
    });
    const tokenFile = join(world.root, 'discord-token');
    writeFileSync(tokenFile, peer.token, { mode: 0o600 });
    const channel = {
      type: 'discord',
      name: 'discord',
      tokenFile,
      applicationId: peer.applicationId,
      guildId: DISCORD_IDS.guild,
      channelId: DISCORD_IDS.channel,
      apiUrl: peer.apiUrl,
      events: ['test.passed', 'test.failed', 'upgrade.applied'],
    };
    const notify = world.config.notify as { channels: unknown[] };
    notify.channels.push(channel);
    world.writeConfig();
    const config = parseConfig(world.config, channelTypes);
    const services = createServices(config, {
      channels: channelTypes,
      now: () => new Date(Date.now() + clockOffset),
      log: (level, msg, fields) => logs.push({ msg, fields: { level, ...fields } }),
    });
    bus = createCommandBus(services, { ...commandRegistry, configPath: world.configPath, pollMs: 100 });
    adapter = new DiscordAdapter(config.notify.channels.at(-1) as DiscordChannel, {
      config,
      runner: services.runner,
      now: services.now,
      readSecret,
      log: (level, msg, fields) => logs.push({ msg, fields: { level, ...fields } }),
    });
    await adapter.start({ bus });
  });

  afterAll(async () => {
    await adapter?.stop();
    await bus?.stop();
    await peer?.stop();
    world?.cleanup();
  });

  it("an operator's /hv upgrade-test: deferred within 3 s, progress edits, PASSED with the new revision, audited as Discord", async () => {
    // switch-to-configuration of the new system takes 3 s, so that the gateway can drop mid-operation.
    const newRev = world.upstream.advance('nixos-24.05', { sleepSec: 3 });
    const sent = slash(OPERATOR, 'upgrade-test');
    const ack = await peer.waitForCallback(sent.id);
    expect(ack.type).toBe(5);
    expect(ack.latencyMs).toBeLessThan(3_000);
    const msg = await poll(() => original(sent.id), 'the deferred reply');
    await poll(() => /PASSED|FAILED/.test(messageText(msg)), 'the final reply', 180_000);
    const text = messageText(msg);
    expect(text).toContain('PASSED');
    expect(text).toContain(newRev.slice(0, 12));
    expect(text).toContain('/nix/store/');
    // Progress arrived as edits of that one message before the result.
    const edits = peer.restCalls
      .filter((c) => c.method === 'PATCH' && c.path.includes(sent.token) && c.status === 200)
      .map((c) => JSON.stringify(c.body));
    expect(edits.some((b) => b.includes('building the system'))).toBe(true);
    expect(edits.some((b) => b.includes('health checks'))).toBe(true);
    const lines = audit().filter((a) => a.requestId === sent.id);
    expect(lines.map((a) => a.result)).toEqual(expect.arrayContaining(['allowed', 'passed']));
    expect(lines.every((a) => a.actor.channel === 'discord' && a.actor.id === `user:${OPERATOR}`)).toBe(true);
    // The test.passed notification reached the channel as an embed too.
    await poll(
      () =>
        peer
          .messagesIn(DISCORD_IDS.channel)
          .some((m) => m.source === 'channel' && /passed/i.test(messageText(m))),
      'test.passed notification',
      30_000,
    );
  }, 240_000);

  it('a user with no configured role or id: denied, audited, nothing runs', async () => {
    const before = generation();
    const auditBefore = audit().length;
    const sent = slash(DISCORD_IDS.outsider, 'upgrade-test');
    expect((await peer.waitForCallback(sent.id)).latencyMs).toBeLessThan(3_000);
    const followUp = await poll(
      () => peer.messages.find((m) => m.interactionId === sent.id && m.source === 'followup'),
      'refusal',
    );
    expect(messageText(followUp)).toContain('not authorised');
    expect(followUp.wire.flags).toBe(64);
    expect(original(sent.id)?.deleted).toBe(true);
    const denied = audit().slice(auditBefore);
    expect(denied).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ channel: 'discord', id: `user:${DISCORD_IDS.outsider}` }),
        operation: 'upgrade-test',
        result: 'denied',
        requestId: sent.id,
      }),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    expect(audit().length).toBe(auditBefore + 1);
    expect(generation()).toBe(before);

    // A Discord server administrator (who sees /hv) without an hv role is denied all the same.
    const asServerAdmin = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'status', options: [] }] },
      member: { user: seed(DISCORD_IDS.outsider).user, roles: [], permissions: '8' },
    });
    const refusal = await poll(
      () => peer.messages.find((m) => m.interactionId === asServerAdmin.id && m.source === 'followup'),
      'refusal of the server admin',
    );
    expect(messageText(refusal)).toContain('not authorised');
    // The same unknown identity again within a minute: answered, but nothing more is written
    // (unknown identities are rate-limited before any write).
    expect(audit().length).toBe(auditBefore + 1);
  });

  it('system-upgrade runs only after an admin confirms; clicks by others are refused; the gateway drops mid-way and the result still arrives', async () => {
    const genBefore = generation();
    const activationsBefore = world.activations().length;
    const sent = slash(DISCORD_IDS.admin, 'system-upgrade');
    expect((await peer.waitForCallback(sent.id)).latencyMs).toBeLessThan(3_000);
    const msg = await poll(() => original(sent.id), 'the reply');
    const buttons = await poll(
      () =>
        ((msg.wire.components ?? []) as { components: { label: string; custom_id: string }[] }[])[0]
          ?.components,
      'confirm buttons',
    );
    const confirmId = buttons.find((b) => b.label === 'Confirm')?.custom_id as string;
    await new Promise((r) => setTimeout(r, 500));
    expect(generation()).toBe(genBefore);

    // The operator and an outsider click: refused, ephemerally, nothing runs.
    for (const user of [OPERATOR, DISCORD_IDS.outsider]) {
      const c = click(user, msg.id, confirmId);
      expect((await peer.waitForCallback(c.id)).accepted).toBe(true);
      const refusal = await poll(
        () => peer.messages.find((m) => m.interactionId === c.id && m.source === 'followup'),
        'click refusal',
      );
      expect(messageText(refusal)).toContain('not authorised');
      expect(refusal.wire.flags).toBe(64);
    }
    expect(generation()).toBe(genBefore);
    expect(world.activations().length).toBe(activationsBefore);
    expect(audit().filter((a) => a.result === 'denied' && a.operation === 'system-upgrade')).toHaveLength(2);

    const ok = click(DISCORD_IDS.admin, msg.id, confirmId);
    await peer.waitForCallback(ok.id);
    // Drop the gateway as soon as the operation reports progress.
    await poll(() => /activating/.test(messageText(msg)), 'activation progress', 60_000);
    peer.dropGateway();
    expect(messageText(msg)).not.toContain('APPLIED');
    await poll(() => /APPLIED|FAILED|ERROR/.test(messageText(msg)), 'the result', 180_000);
    expect(messageText(msg)).toContain('APPLIED');
    expect(generation()).not.toBe(genBefore);
    expect(world.activations().at(-1)?.action).toBe('switch');
    await peer.waitForSession({ resumes: 1 }, { timeoutMs: 20_000 });
    const confirmed = audit().find((a) => a.result === 'confirmed' && a.requestId === sent.id);
    expect(confirmed?.actor).toMatchObject({ channel: 'discord', id: `user:${DISCORD_IDS.admin}` });
    // Still serving after the resume.
    const after = slash(DISCORD_IDS.admin, 'status');
    expect((await peer.waitForCallback(after.id, { timeoutMs: 10_000 })).accepted).toBe(true);
    const status = await poll(() => original(after.id), 'status reply');
    await poll(() => messageText(status).includes('Generations'), 'status result', 30_000);
    expect(messageText(status)).toContain('hv01');
  }, 240_000);

  it('an expired confirmation is refused and nothing runs', async () => {
    const genBefore = generation();
    const activationsBefore = world.activations().length;
    const sent = slash(DISCORD_IDS.admin, 'rollback');
    const msg = await poll(() => original(sent.id), 'the reply');
    const buttons = await poll(
      () =>
        ((msg.wire.components ?? []) as { components: { label: string; custom_id: string }[] }[])[0]
          ?.components,
      'confirm buttons',
    );
    clockOffset += 6 * 60_000; // past chatops.confirmTimeoutSec (300 s)
    const c = click(
      DISCORD_IDS.admin,
      msg.id,
      buttons.find((b) => b.label === 'Confirm')?.custom_id as string,
    );
    const refusal = await poll(
      () => peer.messages.find((m) => m.interactionId === c.id && m.source === 'followup'),
      'expiry refusal',
    );
    expect(messageText(refusal)).toContain('expired');
    expect(refusal.wire.flags).toBe(64);
    await new Promise((r) => setTimeout(r, 500));
    expect(generation()).toBe(genBefore);
    expect(world.activations().length).toBe(activationsBefore);
    expect(audit().at(-1)).toMatchObject({ operation: 'rollback', result: 'denied', requestId: sent.id });
  });

  it('/hv rollback to:1 reaches the command as --to 1; an outsider cannot cancel it; the admin confirms and it rolls back', async () => {
    const genBefore = generation();
    const sent = slash(DISCORD_IDS.admin, 'rollback', [{ name: 'to', type: 4, value: 1 }]);
    const msg = await poll(() => original(sent.id), 'the reply');
    const buttons = await poll(
      () =>
        ((msg.wire.components ?? []) as { components: { label: string; custom_id: string }[] }[])[0]
          ?.components,
      'confirm buttons',
    );
    expect(messageText(msg)).toContain('rollback --to 1');
    const id = (label: string) => buttons.find((b) => b.label === label)?.custom_id as string;
    const cancel = click(DISCORD_IDS.outsider, msg.id, id('Cancel'));
    const refusal = await poll(
      () => peer.messages.find((m) => m.interactionId === cancel.id && m.source === 'followup'),
      'cancel refusal',
    );
    expect(messageText(refusal)).toContain('not authorised');
    expect(messageText(msg)).not.toMatch(/cancelled/i);
    const ok = click(DISCORD_IDS.admin, msg.id, id('Confirm'));
    await peer.waitForCallback(ok.id);
    await poll(() => /ROLLED BACK|FAILED|REFUSED|ERROR/.test(messageText(msg)), 'the result', 120_000);
    expect(messageText(msg)).toContain('ROLLED BACK');
    expect(generation()).not.toBe(genBefore);
    expect(audit().find((a) => a.result === 'confirmed' && a.requestId === sent.id)).toBeDefined();
  }, 180_000);

  it('a failing upgrade-test ends with FAILED, the reason and the revert, and a test.failed notification', async () => {
    world.upstream.advance('nixos-24.05', { activationExit: 0, failedUnits: ['libvirtd.service'] });
    const sent = slash(OPERATOR, 'upgrade-test');
    const msg = await poll(() => original(sent.id), 'the reply');
    await poll(() => /PASSED|FAILED|ERROR/.test(messageText(msg)), 'the final reply', 180_000);
    const text = messageText(msg);
    expect(text).toContain('FAILED');
    expect(text).toContain('libvirtd');
    expect(text).toMatch(/re-activated/);
    await poll(
      () =>
        peer
          .messagesIn(DISCORD_IDS.channel)
          .some(
            (m) =>
              m.source === 'channel' && /failed/i.test(messageText(m)) && /libvirtd/.test(messageText(m)),
          ),
      'test.failed notification',
      30_000,
    );
  }, 240_000);
});
