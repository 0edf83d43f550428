import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { messageText as discordMessageText } from '../adapters/discord/harness.js';
import {
  buttonsOf,
  click,
  messageText,
  NOTIFY_CHANNEL,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from '../adapters/slack/harness.js';
import { auditRecords } from '../fixtures/chat.js';
import { type BackgroundHv, World } from '../fixtures/world.js';
import { DiscordPeer } from '../peers/discord-peer.js';
import { DISCORD_IDS } from '../peers/discord-types.js';
import { SlackPeer } from '../peers/slack-peer.js';
import type { SlackPostedMessage } from '../peers/slack-web-api.js';

/**
 * The dead-man confirmation window from chat (issue 16), on the shipped bundle: `hv daemon` with
 * its chat process, the real bolt and discord.js against loopback peers, a real Nix sandbox host.
 * A peer that refuses connections stands in for a host the activation cut off.
 */
const WINDOW_SEC = 12;
const BOB = 'U0BOB'; // neither requester nor admin

let world: World | undefined;
let slack: SlackPeer | undefined;
let discord: DiscordPeer | undefined;
let daemon: BackgroundHv | undefined;

afterEach(async () => {
  if (daemon && daemon.proc.exitCode === null) {
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
  }
  world?.cleanup();
  await slack?.stop();
  await discord?.stop();
  world = slack = discord = daemon = undefined;
});

const lockOf = (w: World) => readFileSync(join(w.flakeDir, 'flake.lock'), 'utf8');
const windowPath = (w: World) => join(w.paths.state, 'confirm-window.json');

async function confirmWorld(
  confirm: ('chat' | 'probes' | 'human')[],
  opts: { discord?: boolean; windowSec?: number } = {},
) {
  slack = await SlackPeer.start();
  const s = slack;
  const roles: Record<string, 'viewer' | 'admin'> = {
    [`slack:${s.workspace.teamId}:${s.workspace.userId}`]: 'admin',
    [`slack:${s.workspace.teamId}:${BOB}`]: 'viewer',
  };
  if (opts.discord) {
    discord = await DiscordPeer.start();
    roles[`discord:role:${DISCORD_IDS.adminRole}`] = 'admin';
  }
  world = new World({
    branches: ['nixos-24.05'],
    config: {
      randomizedDelaySec: 0,
      chatops: { roles },
    },
  });
  const w = world;
  writeFileSync(
    join(w.paths.state, 'last-check.json'),
    JSON.stringify({ at: new Date().toISOString(), ok: true }),
  );
  const secrets = join(w.root, 'secrets');
  spawnSync('mkdir', ['-m', '700', secrets]);
  const channels = w.config.notify as { channels: unknown[] };
  channels.channels.push(slackChannelConfig(s, secrets, { events: ['upgrade.failed'] }));
  if (discord) {
    const tokenFile = join(secrets, 'discord-token');
    writeFileSync(tokenFile, `${discord.token}\n`, { mode: 0o600 });
    channels.channels.push({
      type: 'discord',
      tokenFile,
      applicationId: discord.applicationId,
      guildId: DISCORD_IDS.guild,
      channelId: DISCORD_IDS.channel,
      apiUrl: discord.apiUrl,
      events: ['notify.test'],
    });
  }
  w.writeConfig();
  const previous = realpathSync(w.paths.currentSystem);
  const oldLock = lockOf(w);
  // A tested update, so that system-upgrade has something to apply.
  w.upstream.advance('nixos-24.05');
  const t = w.hv(['upgrade-test', '--json']);
  expect(t.code, t.stderr + t.stdout).toBe(0);
  const tested = JSON.parse(w.read(w.paths.testJson)) as { toplevel: string };
  // The window is configured after the test (which would open one of its own).
  (w.config as Record<string, unknown>).apply = { confirm, confirmWithinSec: opts.windowSec ?? WINDOW_SEC };
  w.writeConfig();
  const d = w.startHv(['daemon']);
  daemon = d;
  await s.waitForSocket(1, { timeoutMs: 30_000 }).catch((e) => {
    throw new Error(`${e}\n${d.output()}`);
  });
  if (discord) await discord.waitForSession({}, { timeoutMs: 30_000 });
  return {
    w,
    s,
    d,
    tested,
    previous,
    oldLock,
  };
}

/** `/hv system-upgrade` from Slack and the admin's Confirm click; the thread's messages. */
async function upgradeFromSlack(s: SlackPeer) {
  const sent = sendSlash(s, { id: s.workspace.userId }, 'system-upgrade');
  expect((await sent.ack).acked).toBe(true);
  const thread = () => threadsSince(s, s.workspace.channelId, sent.sentAt).flat();
  const confirm = await until(
    () =>
      thread()
        .flatMap(buttonsOf)
        .find((b) => b.label.startsWith('Confirm')),
    'the Confirm button',
    30_000,
  );
  await click(s, confirm, s.workspace.userId);
  return thread;
}

const text = (ms: SlackPostedMessage[]) => ms.map(messageText).join('\n');
const discordText = (m: { wire: Record<string, unknown> }) =>
  discordMessageText(m as Parameters<typeof discordMessageText>[0]);

describe('confirmation window from chat (dead-man revert)', () => {
  it('acceptance 1: the host is cut off from Slack after the switch: the previous system, generation and lock come back by themselves; FAILED with the reason reaches the thread once Slack is reachable', async () => {
    const { w, s, d, tested, previous, oldLock } = await confirmWorld(['chat']);
    // The activation "cuts the host off": from the moment the window opens, every connection to
    // Slack is refused (the reconnect the daemon asks for included), until the test lets it back.
    let cut = false;
    s.reachability.set(() => {
      if (existsSync(windowPath(w))) cut = true;
      return cut;
    });
    const thread = await upgradeFromSlack(s);
    const opened = await until(
      () => (existsSync(windowPath(w)) ? Date.now() : undefined),
      'the window',
      120_000,
    );
    expect(realpathSync(w.paths.currentSystem)).toBe(tested.toplevel);
    await until(
      () => !existsSync(windowPath(w)) && realpathSync(w.paths.currentSystem) === previous,
      'the revert',
      (WINDOW_SEC + 30) * 1000,
    ).catch((e) => {
      throw new Error(`${e}\n${d.output()}`);
    });
    expect(Date.now() - opened).toBeLessThan((WINDOW_SEC + 30) * 1000);
    // Previous system active, the profile's current generation and the live lock are the previous ones.
    expect(realpathSync(w.paths.profile)).toBe(previous);
    expect(lockOf(w)).toBe(oldLock);
    expect(w.activations().at(-1)).toEqual({ action: 'switch', path: previous });
    // The chat process did try to reconnect after the activation, and was refused.
    expect(s.reachability.refused).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 2000));
    expect(text(thread())).not.toMatch(/FAILED/);

    // Reachable again: the result reaches the thread.
    cut = false;
    s.reachability.set(false);
    await until(() => /FAILED/.test(text(thread())), 'FAILED in the thread', 180_000).catch((e) => {
      throw new Error(`${e}\n${d.output()}`);
    });
    const all = text(thread());
    expect(all).toMatch(/not confirmed within \d+ s/);
    expect(all).toContain('no chat reconnection from slack');
    // The upgrade.failed notification, queued while Slack was unreachable, arrives too (once).
    await until(
      () => s.messages.some((m) => m.channel === NOTIFY_CHANNEL),
      'the upgrade.failed notification',
      180_000,
    );
    expect(text(s.messages.filter((m) => m.channel === NOTIFY_CHANNEL))).toMatch(/not confirmed within/);
  }, 420_000);

  it('acceptance 2: Slack and Discord reconnect after the switch: the upgrade stays, the result says "confirmed by chat reconnection"', async () => {
    const { w, s, d, tested } = await confirmWorld(['chat'], { discord: true });
    const identifiesBefore = discord?.identifies ?? 0;
    const socketsBefore = s.connectionsOpened;
    const thread = await upgradeFromSlack(s);
    await until(() => /APPLIED/.test(text(thread())), 'APPLIED in the thread', 240_000).catch((e) => {
      throw new Error(`${e}\n${d.output()}\n${text(thread())}`);
    });
    expect(text(thread())).toContain('confirmed by chat reconnection (slack, discord)');
    expect(realpathSync(w.paths.currentSystem)).toBe(tested.toplevel);
    expect(realpathSync(w.paths.profile)).toBe(tested.toplevel);
    expect(existsSync(windowPath(w))).toBe(false);
    // Fresh connections after the activation: a new Socket Mode connection and a new gateway session.
    expect(s.connectionsOpened).toBeGreaterThan(socketsBefore);
    expect(discord?.identifies).toBeGreaterThan(identifiesBefore);
    // The thread said a window was open and until when.
    expect(text(thread())).toMatch(/Confirmation window open until/);
  }, 420_000);

  it('Keep: a viewer who did not ask is refused; the requester keeps the system', async () => {
    const { w, s, d, tested } = await confirmWorld(['human'], { windowSec: 60 });
    const thread = await upgradeFromSlack(s);
    const keep = await until(
      () =>
        thread()
          .flatMap(buttonsOf)
          .find((b) => b.label === 'Keep'),
      'the Keep button',
      120_000,
    ).catch((e) => {
      throw new Error(`${e}\n${d.output()}\n${text(thread())}`);
    });
    expect(messageText(keep.message)).toMatch(/Confirmation window open until/);
    await click(s, keep, BOB);
    await until(
      () =>
        s.messages.find(
          (m) => m.ephemeralTo === BOB && /only the requester or an admin/.test(messageText(m)),
        ),
      "the refusal of Bob's click",
      15_000,
    );
    expect(existsSync(windowPath(w))).toBe(true);
    await click(s, keep, s.workspace.userId);
    await until(() => /APPLIED/.test(text(thread())), 'APPLIED in the thread', 60_000).catch((e) => {
      throw new Error(`${e}\n${d.output()}\n${text(thread())}`);
    });
    expect(text(thread())).toMatch(/confirmed by .*Keep pressed in slack/);
    expect(realpathSync(w.paths.currentSystem)).toBe(tested.toplevel);
    // The Keep button is gone once the window closed.
    expect(
      thread()
        .flatMap(buttonsOf)
        .find((b) => b.label === 'Keep'),
    ).toBeUndefined();
    const audit = auditRecords(w.paths.audit);
    expect(audit.some((a) => a.result === 'kept' && a.actor.id.endsWith(s.workspace.userId))).toBe(true);
    expect(audit.some((a) => a.result === 'denied' && a.actor.id.endsWith(BOB))).toBe(true);
  }, 420_000);

  it('Keep in Discord: the notice with Keep is posted in the channel; an outsider is refused, an admin keeps the system', async () => {
    const { w, d, tested } = await confirmWorld(['human'], { discord: true, windowSec: 60 });
    const p = discord as DiscordPeer;
    const explain = (e: unknown) => {
      throw new Error(`${e}\n${d.output()}`);
    };
    const buttons = () =>
      p.messages
        .filter((m) => !m.deleted)
        .flatMap((m) =>
          ((m.wire.components ?? []) as { components?: { label?: string; custom_id?: string }[] }[]).flatMap(
            (r) =>
              (r.components ?? []).map((c) => ({ message: m, label: c.label ?? '', id: c.custom_id ?? '' })),
          ),
        );
    const press = (b: { message: { id: string }; id: string }, user: string) => {
      const member = p.guild.members.find((m) => m.user.id === user);
      if (!member) throw new Error(`no member ${user}`);
      p.sendInteraction({
        type: 3,
        data: { custom_id: b.id, component_type: 2 },
        message: { id: b.message.id },
        member: { user: member.user, roles: member.roles ?? [] },
      });
    };
    const sent = p.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'system-upgrade', options: [] }] },
    });
    const confirm = await until(
      () => buttons().find((b) => b.id.startsWith('hv:confirm:')),
      'the Confirm button',
      30_000,
    ).catch(explain);
    press(confirm, DISCORD_IDS.admin);
    const keep = await until(
      () => buttons().find((b) => b.id.startsWith('hv:keep:')),
      'the Keep button',
      120_000,
    ).catch(explain);
    expect(discordText(keep.message)).toMatch(/Confirmation window open/);
    press(keep, DISCORD_IDS.outsider);
    await until(
      () => p.messages.some((m) => /only the requester or an admin/.test(discordText(m))),
      "the refusal of the outsider's click",
      15_000,
    ).catch(explain);
    expect(existsSync(windowPath(w))).toBe(true);
    press(keep, DISCORD_IDS.admin);
    const reply = () => p.messages.find((m) => m.interactionId === sent.id);
    await until(
      () => /APPLIED/.test(discordText(reply() ?? { wire: {} })),
      'APPLIED in the reply',
      60_000,
    ).catch(explain);
    expect(discordText(reply() ?? { wire: {} })).toMatch(/confirmed by .*Keep pressed in discord/);
    expect(realpathSync(w.paths.currentSystem)).toBe(tested.toplevel);
    await until(() => !buttons().some((b) => b.id.startsWith('hv:keep:')), 'the Keep button gone', 15_000);
  }, 420_000);
});
