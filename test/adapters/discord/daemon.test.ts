import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from '../../fixtures/world.js';
import { DISCORD_IDS, DiscordPeer } from '../../peers/discord-peer.js';
import { poll } from '../chat-contract.js';
import { messageText } from './harness.js';

let world: World | undefined;
let peer: DiscordPeer | undefined;
const daemons: ChildProcess[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) if (d.exitCode === null) d.kill('SIGKILL');
  await peer?.stop();
  world?.cleanup();
  peer = undefined;
  world = undefined;
});

function startDaemon(w: World): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = w.hvSpawn(['daemon']);
  daemons.push(proc);
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

describe('hv daemon hosts the Discord adapter', () => {
  it('an upgrade-test from Discord survives a daemon restart: the result still edits the same reply', async () => {
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
    writeFileSync(tokenFile, `${p.token}\n`, { mode: 0o600 });
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

    const first = startDaemon(w);
    await p.waitForSession({}, { timeoutMs: 30_000 });
    await poll(() => p.commandWrites.length > 0, '/hv registration', 10_000);
    expect(first.output()).not.toContain(p.token);

    w.upstream.advance('nixos-24.05', { sleepSec: 4 });
    const sent = p.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'upgrade-test', options: [] }] },
    });
    expect((await p.waitForCallback(sent.id)).latencyMs).toBeLessThan(3_000);
    const msg = await poll(() => p.messages.find((m) => m.interactionId === sent.id), 'the reply');
    await poll(() => /activating/.test(messageText(msg)), 'activation progress', 120_000);

    // The daemon goes away in the middle of the activation (as a switch may restart it).
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(messageText(msg)).not.toMatch(/PASSED|FAILED/);

    const second = startDaemon(w);
    await p.waitForSession({ identifies: 2 }, { timeoutMs: 30_000 });
    await poll(() => /PASSED|FAILED/.test(messageText(msg)), 'the result after the restart', 120_000);
    expect(messageText(msg)).toContain('PASSED');
    // Exactly one reply message for the request: the result edited it, nothing was posted twice.
    expect(p.messages.filter((m) => m.interactionId === sent.id)).toHaveLength(1);
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.output()).not.toContain(p.token);
  }, 300_000);
});
