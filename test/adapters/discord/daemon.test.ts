import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from '../../fixtures/world.js';
import { DISCORD_IDS, DiscordPeer } from '../../peers/discord-peer.js';
import { poll } from '../chat-contract.js';
import { messageText } from './harness.js';

let world: World | undefined;
let peer: DiscordPeer | undefined;

afterEach(async () => {
  world?.cleanup(); // kills a daemon still running before its peer goes away
  await peer?.stop();
  peer = undefined;
  world = undefined;
});

const startDaemon = (w: World) => w.startHv(['daemon']);

/** A Nix world whose config has a Discord channel pointed at a fresh peer, and an admin role. */
async function discordWorld(token?: string): Promise<{ w: World; p: DiscordPeer }> {
  peer = await DiscordPeer.start();
  const p = peer;
  world = new World({
    branches: ['nixos-24.05'],
    config: {
      randomizedDelaySec: 0,
      chatops: { roles: { [`discord:role:${DISCORD_IDS.adminRole}`]: 'admin' } },
    },
  });
  const w = world;
  // A recent successful check, so the daemon does not catch up a check at start.
  writeFileSync(
    join(w.paths.state, 'last-check.json'),
    JSON.stringify({ at: new Date().toISOString(), ok: true }),
  );
  const tokenFile = join(w.root, 'discord-token');
  writeFileSync(tokenFile, `${token ?? p.token}\n`, { mode: 0o600 });
  (w.config.notify as { channels: unknown[] }).channels.push({
    type: 'discord',
    tokenFile,
    applicationId: p.applicationId,
    guildId: DISCORD_IDS.guild,
    channelId: DISCORD_IDS.channel,
    apiUrl: p.apiUrl,
    events: ['test.passed', 'test.failed'],
  });
  w.writeConfig();
  return { w, p };
}

/** The CLI without blocking this process (the peer lives here and must keep answering). */
async function hvAsync(
  w: World,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = w.hvSpawn(args);
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d) => {
    stdout += d;
  });
  proc.stderr?.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

describe('hv daemon hosts the Discord adapter', () => {
  it('an upgrade-test from Discord survives a daemon restart: the result still edits the same reply', async () => {
    const { w, p } = await discordWorld();
    const first = startDaemon(w);
    let second: ReturnType<typeof startDaemon> | undefined;
    // On failure, show what the daemons said.
    const explain = async (what: () => Promise<unknown>) => {
      try {
        await what();
      } catch (e) {
        throw new Error(
          `${(e as Error).message}\n--- first daemon:\n${first.output()}\n--- second daemon:\n${second?.output() ?? ''}`,
        );
      }
    };
    await explain(() => p.waitForSession({}, { timeoutMs: 60_000 }));
    await poll(() => p.commandWrites.length > 0, '/hv registration', 10_000);
    expect(first.output()).not.toContain(p.token);

    // switch-to-configuration sleeps long enough for the daemon to stop in the middle, even under load.
    w.upstream.advance('nixos-24.05', { sleepSec: 10 });
    const sent = p.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'upgrade-test', options: [] }] },
    });
    expect((await p.waitForCallback(sent.id)).latencyMs).toBeLessThan(3_000);
    const msg = await poll(() => p.messages.find((m) => m.interactionId === sent.id), 'the reply');
    await explain(() => poll(() => /activating/.test(messageText(msg)), 'activation progress', 120_000));

    // The daemon goes away in the middle of the activation (as a switch may restart it).
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await explain(async () => expect(messageText(msg)).not.toMatch(/PASSED|FAILED/));

    second = startDaemon(w);
    const restarted = second;
    await explain(async () => {
      await p.waitForSession({ identifies: 2 }, { timeoutMs: 60_000 });
      await poll(() => /PASSED|FAILED/.test(messageText(msg)), 'the result after the restart', 120_000);
    });
    expect(messageText(msg)).toContain('PASSED');
    // Exactly one reply message for the request: the result edited it, nothing was posted twice.
    expect(p.messages.filter((m) => m.interactionId === sent.id)).toHaveLength(1);
    restarted.proc.kill('SIGTERM');
    expect(await restarted.exited).toBe(0);
    expect(restarted.output()).not.toContain(p.token);
  }, 300_000);

  it('hv notify test --channel discord posts an embed; a bad token fails with what to fix, never the token', async () => {
    const { w, p } = await discordWorld();
    const ok = await hvAsync(w, ['notify', 'test', '--channel', 'discord', '--json']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    const posted = p.messagesIn(DISCORD_IDS.channel).filter((m) => m.source === 'channel');
    expect(posted).toHaveLength(1);
    expect(messageText(posted[0]!)).toContain('hv01');
    expect(posted[0]!.wire.embeds).toHaveLength(1);

    writeFileSync(join(w.root, 'discord-token'), 'wrong-token-s3cr3t\n');
    const bad = await hvAsync(w, ['notify', 'test', '--channel', 'discord', '--json']);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain(join(w.root, 'discord-token'));
    expect(bad.stdout + bad.stderr).toContain('401');
    expect(bad.stdout + bad.stderr).not.toContain('s3cr3t');
    expect(p.messagesIn(DISCORD_IDS.channel).filter((m) => m.source === 'channel')).toHaveLength(1);
  }, 120_000);

  it('a daemon with a bad Discord token says what to fix and keeps running', async () => {
    const { w, p } = await discordWorld('wrong-token-s3cr3t');
    const d = startDaemon(w);
    await poll(() => d.output().includes('chat adapter failed to start'), 'the start error', 30_000);
    expect(d.output()).toContain(join(w.root, 'discord-token'));
    expect(d.output()).not.toContain('s3cr3t');
    expect(p.identifies).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(d.proc.exitCode).toBe(null);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  }, 120_000);
});
