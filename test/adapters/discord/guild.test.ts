import { afterEach, describe, expect, it } from 'vitest';
import { DISCORD_IDS } from '../../peers/discord-peer.js';
import type { FakeBus } from '../chat-contract.js';
import { type DiscordWorld, startDiscord } from './harness.js';

/**
 * The bot may be in other servers, or be used in a DM: role ids there mean nothing for this host.
 * Only interactions from the configured guild reach the bus; others get an ephemeral "no".
 */
let w: DiscordWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const OTHER_GUILD = '1300000000000000999';

describe('discord: interactions from another server', () => {
  it.each([
    ['another server', OTHER_GUILD],
    ['a DM', null],
  ])('/hv from %s is refused, ephemerally, and never reaches the bus', async (_what, guild) => {
    w = await startDiscord();
    const bus = w.bus as FakeBus;
    const member = { user: w.admin.member.user, roles: [DISCORD_IDS.adminRole] };
    const sent = w.peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'status', options: [] }] },
      guild_id: guild,
      ...(guild ? { member } : { user: w.admin.member.user }),
    });
    const click = w.peer.sendInteraction({
      type: 3,
      data: { custom_id: 'hv:confirm:rollback:tok-1' },
      guild_id: guild,
      ...(guild ? { member } : { user: w.admin.member.user }),
    });
    for (const id of [sent.id, click.id]) {
      const cb = await w.peer.waitForCallback(id);
      expect(cb.type).toBe(4);
      expect(cb.data?.flags).toBe(64);
      expect(String(cb.data?.content)).toMatch(/does not take commands from this server/);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(bus.submits).toHaveLength(0);
    expect(bus.confirms).toHaveLength(0);
    expect(bus.cancels).toHaveLength(0);
    expect(w.logs.some((l) => l.msg === 'discord interaction from another server refused')).toBe(true);
  });

  it('/hv from the configured server still reaches the bus', async () => {
    w = await startDiscord();
    const sent = w.command(w.admin, 'status');
    expect((await w.peer.waitForCallback(sent.id)).type).toBe(5);
    expect((await (w.bus as FakeBus).waitForSubmit(0)).req.command).toBe('status');
  });
});
