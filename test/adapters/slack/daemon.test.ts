import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from '../../fixtures/world.js';
import { SlackPeer } from '../../peers/slack-peer.js';
import {
  BOT_TOKEN,
  messageText,
  NOTIFY_CHANNEL,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from './harness.js';

/** `hv daemon` (the shipped bundle) hosting the Slack adapter and the command bus, on a real Nix. */
let world: World | undefined;
let peer: SlackPeer | undefined;
let secrets: string | undefined;

afterEach(async () => {
  world?.cleanup(); // kills a daemon still running before its peer goes away
  await peer?.stop();
  if (secrets) rmSync(secrets, { recursive: true, force: true });
  peer = undefined;
  world = undefined;
  secrets = undefined;
});

const startDaemon = (w: World) => w.startHv(['daemon']);

async function hvAsync(w: World, args: string[]) {
  const proc = w.hvSpawn(args);
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  return { code, out };
}

async function slackWorld(): Promise<{ w: World; p: SlackPeer; botFile: string }> {
  peer = await SlackPeer.start();
  const p = peer;
  secrets = mkdtempSync(join(tmpdir(), 'hv-slack-daemon-'));
  world = new World({
    branches: ['nixos-24.05'],
    config: {
      randomizedDelaySec: 0,
      chatops: { roles: { [`slack:${p.workspace.teamId}:${p.workspace.userId}`]: 'operator' } },
    },
  });
  const w = world;
  writeFileSync(
    join(w.paths.state, 'last-check.json'),
    JSON.stringify({ at: new Date().toISOString(), ok: true }),
  );
  (w.config.notify as { channels: unknown[] }).channels.push(
    slackChannelConfig(p, secrets, { events: ['test.passed', 'test.failed'] }),
  );
  w.writeConfig();
  return { w, p, botFile: join(secrets, 'slack-bot') };
}

describe('hv daemon hosts the Slack adapter', () => {
  it('an upgrade-test from Slack survives a daemon restart: the result still reaches the same thread', async () => {
    const { w, p } = await slackWorld();
    const first = startDaemon(w);
    await p.waitForSocket(1, { timeoutMs: 30_000 });
    w.upstream.advance('nixos-24.05', { sleepSec: 4 });
    const sent = sendSlash(p, { id: p.workspace.userId }, 'upgrade-test');
    const ack = await sent.ack;
    expect(ack.acked).toBe(true);
    expect(ack.latencyMs).toBeLessThan(3_000);
    const thread = () => threadsSince(p, p.workspace.channelId, sent.sentAt);
    await until(() => thread()[0]?.some((m) => /build/i.test(messageText(m))), 'build progress', 60_000);

    // The daemon goes away in the middle of the operation (as a switch may restart it).
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(
      thread()
        .flat()
        .some((m) => /PASSED|FAILED/.test(messageText(m))),
    ).toBe(false);

    const second = startDaemon(w);
    try {
      await p.waitForSocket(2, { timeoutMs: 30_000 });
      await until(
        () => thread()[0]?.some((m) => /Upgrade Test: (PASSED|FAILED)/.test(messageText(m))),
        'the result after the restart',
        120_000,
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n--- first:\n${first.output()}\n--- second:\n${second.output()}`,
      );
    }
    expect(thread()).toHaveLength(1);
    expect(thread()[0]?.map(messageText).join('\n')).toContain('Upgrade Test: PASSED');
    // test.passed was announced once in the notification channel, as Block Kit: the operation
    // left it to the daemon, whose chat process posts it.
    await until(() => p.messages.some((m) => m.channel === NOTIFY_CHANNEL), 'the test.passed notice', 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const notices = p.messages.filter((m) => m.channel === NOTIFY_CHANNEL);
    expect(notices).toHaveLength(1);
    expect(notices[0]?.blocks?.length).toBeGreaterThan(0);
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(first.output() + second.output()).not.toContain(BOT_TOKEN);
  }, 300_000);

  it('hv notify test --channel slack posts Block Kit; a bad token fails saying which file to fix, never the token', async () => {
    const { w, p, botFile } = await slackWorld();
    const ok = await hvAsync(w, ['notify', 'test', '--channel', 'slack', '--json']);
    expect(ok.code, ok.out).toBe(0);
    expect(p.messages.filter((m) => m.channel === NOTIFY_CHANNEL)).toHaveLength(1);
    writeFileSync(botFile, 'xoxb-wrong-s3cr3t\n');
    const bad = await hvAsync(w, ['notify', 'test', '--channel', 'slack', '--json']);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(botFile);
    expect(bad.out).toContain('invalid_auth');
    expect(bad.out).not.toContain('s3cr3t');
  }, 120_000);

  it('a daemon with a bad Slack token says what to fix and keeps running', async () => {
    const { w, p, botFile } = await slackWorld();
    writeFileSync(botFile, 'xoxb-wrong-s3cr3t\n');
    const d = startDaemon(w);
    await until(() => d.output().includes('chat adapter failed to start'), 'the start error', 30_000);
    expect(d.output()).toContain(botFile);
    expect(d.output()).not.toContain('s3cr3t');
    expect(p.connectionsOpened).toBe(0);
    // hv daemon installs its SIGTERM handler once start() returned (after the components).
    await until(
      () => /component started.*chat-process|chat-process.*component started/.test(d.output()),
      'started',
      30_000,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(d.proc.exitCode).toBe(null);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  }, 120_000);
});
