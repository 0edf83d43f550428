/**
 * A chat notification in flight is delivered exactly once: the platform carries out the post but
 * its answer is lost (connection dropped, or the answer comes after the adapter's timeout), as when
 * the chat process is killed between the platform's commit and the outbox's acknowledgement. The
 * retry (attempt 2, same delivery id) must not post again, on the real discord.js and Slack Web API
 * clients against the loopback peers.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordAdapter } from '../../adapters/discord/index.js';
import { channelTypes } from '../../adapters/registry.js';
import { parseConfig } from '../../src/config/load.js';
import { makeEvent } from '../../src/notify/events.js';
import { type AdapterContext, DeliveryError } from '../../src/ports/channel.js';
import { ExecaRunner } from '../../src/proc.js';
import { createServices, readSecret } from '../../src/services.js';
import { DISCORD_IDS } from '../peers/discord-peer.js';
import type { LostResponse } from '../peers/http-util.js';
import { SlackPeer } from '../peers/slack-peer.js';
import { type DiscordWorld, startDiscord } from './discord/harness.js';
import { bareConfig, makeAdapter, NOTIFY_CHANNEL } from './slack/harness.js';

const notice = (title: string) =>
  makeEvent('test.failed', { host: 'hv01', key: randomUUID(), title, data: {}, next: 'hv status' });

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

const LOSSES: [string, LostResponse][] = [
  ['the connection drops after the post', { drop: true }],
  ['the answer comes after the timeout', { delayMs: 2_500 }],
];

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('discord: a notification whose answer was lost is posted once', () => {
  let w: DiscordWorld;
  const start = async () => {
    w = await startDiscord({ noStart: true, channel: () => ({ timeoutSec: 1 }) });
    cleanups.push(() => w.close());
  };
  const posts = () => w.peer.messagesIn(DISCORD_IDS.channel);

  for (const [what, lost] of LOSSES) {
    it(`${what}: attempt 1 fails, attempt 2 by a restarted adapter posts nothing new`, async () => {
      await start();
      const event = notice(`Upgrade test failed on hv01 (${what})`);
      const delivery = { id: randomUUID(), attempt: 1 };
      w.peer.loseNextResponse('POST /channels/:id/messages', lost);
      const first = await failure(w.adapter.deliver(event, delivery));
      expect(first).toBeInstanceOf(DeliveryError);
      expect((first as DeliveryError).permanent).toBe(false);
      expect(posts()).toHaveLength(1);
      // The chat process restarted: a new adapter with no memory of the first attempt.
      const ctx: AdapterContext = {
        config: w.config,
        runner: new ExecaRunner(),
        now: () => new Date(),
        readSecret,
        log: () => {},
      };
      await new DiscordAdapter(w.channel, ctx).deliver(event, { ...delivery, attempt: 2 });
      expect(posts()).toHaveLength(1);
      const sends = w.peer.restCalls.filter((c) => c.method === 'POST' && c.path.endsWith('/messages'));
      expect(sends).toHaveLength(2);
      const nonces = sends.map((c) => (c.body as { nonce?: string }).nonce);
      expect(nonces[0]).toMatch(/^[0-9a-f]{25}$/);
      expect(nonces[1]).toBe(nonces[0]);
    });
  }

  it('through the outbox: the lost answer is retried and the channel shows one message', async () => {
    await start();
    const dir = mkdtempSync(join(tmpdir(), 'hv-notify-once-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = parseConfig(
      {
        host: 'hv01',
        allowNonRoot: true,
        paths: { state: join(dir, 'state'), log: join(dir, 'log') },
        notify: { channels: [w.channel], backoffSec: 0.2, timeoutSec: 5 },
      },
      channelTypes,
    );
    const hub = await createServices(config, { channels: channelTypes }).hub();
    w.peer.loseNextResponse('POST /channels/:id/messages', { drop: true });
    const [report] = await hub.publish([notice('Upgrade test failed on hv01 (outbox)')]);
    expect(report?.outcome).toBe('delivered');
    expect(hub.list()).toEqual([]);
    expect(posts()).toHaveLength(1);
    // Two attempts: the first lost its answer, the second was answered with the first message.
    const sends = w.peer.restCalls.filter((c) => c.method === 'POST' && c.path.endsWith('/messages'));
    expect(sends).toHaveLength(2);
  });
});

describe('slack: a notification whose answer was lost is posted once', () => {
  let peer: SlackPeer;
  const start = async (extra: Record<string, unknown> = {}) => {
    peer = await SlackPeer.start();
    const { config, cleanup } = bareConfig(peer, { timeoutSec: 1, ...extra });
    cleanups.push(() => peer.stop(), cleanup);
    return config;
  };
  const posts = () => peer.messages.filter((m) => m.channel === NOTIFY_CHANNEL);

  for (const [what, lost] of LOSSES) {
    it(`${what}: attempt 1 fails, attempt 2 by a restarted adapter finds the post by its metadata`, async () => {
      const config = await start();
      const event = notice(`Upgrade test failed on hv01 (${what})`);
      const delivery = { id: randomUUID(), attempt: 1 };
      peer.loseNextResponse('chat.postMessage', lost);
      const first = await failure(makeAdapter(config).adapter.deliver(event, delivery));
      expect(first).toBeInstanceOf(DeliveryError);
      expect((first as DeliveryError).permanent).toBe(false);
      expect(posts()).toHaveLength(1);
      expect(posts()[0]?.metadata).toEqual({
        event_type: 'hv_notification',
        event_payload: { delivery: delivery.id },
      });
      const { adapter, logs } = makeAdapter(config);
      await adapter.deliver(event, { ...delivery, attempt: 2 });
      expect(posts()).toHaveLength(1);
      expect(peer.callsTo('conversations.history')).toHaveLength(1);
      expect(logs.map((l) => l.msg)).toContain('slack notification already posted by an earlier attempt');
    });
  }

  it('a retry of a post that never reached Slack posts it (once); a first attempt does not look', async () => {
    const config = await start();
    const { adapter } = makeAdapter(config);
    // Some other notifications in the channel, one of them with another delivery id.
    await adapter.deliver(notice('older notice'), { id: randomUUID(), attempt: 1 });
    expect(peer.callsTo('conversations.history')).toHaveLength(0);
    const event = notice('Upgrade test failed on hv01 (never posted)');
    const delivery = { id: randomUUID(), attempt: 1 };
    peer.failNext('chat.postMessage', { status: 500 });
    expect(await failure(adapter.deliver(event, delivery))).toBeInstanceOf(DeliveryError);
    expect(posts()).toHaveLength(1);
    await adapter.deliver(event, { ...delivery, attempt: 2 });
    expect(posts()).toHaveLength(2);
    expect(peer.callsTo('conversations.history')).toHaveLength(1);
    await adapter.deliver(event, { ...delivery, attempt: 3 });
    expect(posts()).toHaveLength(2);
  });

  it('a history lookup Slack refuses (missing scope) is logged with the fix, and the message still goes out', async () => {
    const config = await start();
    const { adapter, logs } = makeAdapter(config);
    peer.failNext('conversations.history', { error: 'missing_scope' });
    await adapter.deliver(notice('retried without history access'), { id: randomUUID(), attempt: 2 });
    expect(posts()).toHaveLength(1);
    const warn = logs.find((l) => l.level === 'warn');
    expect(warn?.fields?.error).toBe('missing_scope');
    expect(String(warn?.fields?.hint)).toContain('channels:history');
  });

  it('through the outbox: the lost answer is retried and the channel shows one message', async () => {
    const config = await start();
    const raw = config.notify.channels[0];
    const dir = mkdtempSync(join(tmpdir(), 'hv-notify-once-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const hubConfig = parseConfig(
      {
        host: 'hv01',
        allowNonRoot: true,
        paths: { state: join(dir, 'state'), log: join(dir, 'log') },
        notify: { channels: [{ ...raw, timeoutSec: 5 }], backoffSec: 0.2 },
      },
      channelTypes,
    );
    const hub = await createServices(hubConfig, { channels: channelTypes }).hub();
    peer.loseNextResponse('chat.postMessage', { drop: true });
    const [report] = await hub.publish([notice('Upgrade test failed on hv01 (outbox)')]);
    expect(report?.outcome).toBe('delivered');
    expect(hub.list()).toEqual([]);
    expect(posts()).toHaveLength(1);
    // The second attempt looked, found its post, and posted nothing.
    expect(peer.callsTo('chat.postMessage')).toHaveLength(1);
    expect(peer.callsTo('conversations.history')).toHaveLength(1);
  });
});
