import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../../adapters/registry.js';
import { commandRegistry } from '../../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import { makeEvent } from '../../../src/notify/events.js';
import { DeliveryError } from '../../../src/ports/channel.js';
import { createServices } from '../../../src/services.js';
import { SlackPeer } from '../../peers/slack-peer.js';
import { FakeBus } from '../chat-contract.js';
import {
  bareConfig,
  buttonsOf,
  click,
  makeAdapter,
  messageText,
  NOTIFY_CHANNEL,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from './harness.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.reverse()) await s();
  stops.length = 0;
});

describe('Slack adapter: daemon restart and bad tokens', () => {
  it('an operation that finishes while the daemon is down reports into the same thread after the restart', async () => {
    const peer = await SlackPeer.start();
    stops.push(() => peer.stop());
    const { config: base, dir, cleanup } = bareConfig(peer);
    stops.push(cleanup);
    const raw = {
      host: 'hv01',
      allowNonRoot: true,
      paths: {
        state: join(dir, 'state'),
        log: join(dir, 'log'),
        motd: join(dir, 'motd'),
        profile: join(dir, 'profile'),
      },
      notify: { channels: [slackChannelConfig(peer, dir)] },
      chatops: { roles: { [`slack:${peer.workspace.teamId}:${peer.workspace.userId}`]: 'admin' } },
    };
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const config = parseConfig(raw, channelTypes);
    expect(base.notify.channels).toHaveLength(1);

    const daemon = async () => {
      const bus = createCommandBus(createServices(config, { channels: channelTypes }), {
        ...commandRegistry,
        configPath,
        pollMs: 50,
      });
      const { adapter } = makeAdapter(config);
      await adapter.start({ bus });
      return { bus, adapter };
    };
    const first: { bus: HostedCommandBus; adapter: Awaited<ReturnType<typeof daemon>>['adapter'] } =
      await daemon();
    const sent = sendSlash(peer, { id: peer.workspace.userId }, 'rollback --to 1');
    await sent.ack;
    const button = await until(
      () =>
        threadsSince(peer, peer.workspace.channelId, sent.sentAt)
          .flat()
          .flatMap(buttonsOf)
          .find((b) => b.label.includes('Confirm')),
      'confirm button',
    );
    await click(peer, button, peer.workspace.userId);
    // The daemon goes down as soon as the operation was handed to its detached process.
    await until(() => first.bus.store.unreported().length === 1, 'the operation record');
    await first.bus.stop();
    await first.adapter.stop();
    const id = first.bus.store.unreported()[0]?.id as string;
    await until(() => first.bus.store.readResult(id), 'the result written by the detached process', 20_000);
    const thread = () => threadsSince(peer, peer.workspace.channelId, sent.sentAt);
    expect(
      thread()
        .flat()
        .some((m) => /REFUSED/.test(messageText(m))),
    ).toBe(false);

    const second = await daemon();
    stops.push(async () => {
      await second.adapter.stop();
      await second.bus.stop();
    });
    expect(second.bus.resumePending((addr) => second.adapter.replyFor(addr))).toBe(1);
    await second.bus.idle();
    expect(thread()).toHaveLength(1);
    const text = (thread()[0] ?? []).map(messageText).join('\n');
    expect(text).toContain('REFUSED');
    expect(text).toContain('generation 1');
    expect(second.bus.resumePending((addr) => second.adapter.replyFor(addr))).toBe(0);
  });

  it('a bad bot token: start() and deliver() say which file to fix; nothing is retried forever', async () => {
    const peer = await SlackPeer.start();
    stops.push(() => peer.stop());
    const { config, dir, cleanup } = bareConfig(peer);
    stops.push(cleanup);
    writeFileSync(join(dir, 'slack-bot'), 'xoxb-revoked\n');
    const { adapter, logs } = makeAdapter(config);
    const err = await adapter.start({ bus: {} as never }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(join(dir, 'slack-bot'));
    expect(err?.message).toContain('invalid_auth');
    expect(err?.message).not.toContain('xoxb-revoked');
    const failure = await adapter
      .deliver(makeEvent('update.available', { host: 'hv01', key: 'k', title: 'x', data: {} }), {
        id: 'd1',
        attempt: 1,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(failure).toBeInstanceOf(DeliveryError);
    expect((failure as DeliveryError).permanent).toBe(true);
    expect((failure as DeliveryError).message).toContain('Bot User OAuth Token');
    expect(JSON.stringify(logs)).not.toContain('xoxb-revoked');
  });

  it("a refusal reaches the requester through the request's response_url when the bot cannot post in that channel", async () => {
    const peer = await SlackPeer.start({ channels: [NOTIFY_CHANNEL] });
    stops.push(() => peer.stop());
    const { config, cleanup } = bareConfig(peer);
    stops.push(cleanup);
    const { adapter } = makeAdapter(config);
    const bus = new FakeBus();
    bus.onSubmit = () => ({ kind: 'refused', reason: 'not authorised' });
    await adapter.start({ bus });
    stops.push(() => adapter.stop());
    const sent = sendSlash(peer, { id: 'U0NOBODY' }, 'status');
    const ack = await sent.ack;
    expect(ack.acked).toBe(true);
    const posts = await peer.waitForResponse(ack.responseUrl as string);
    expect(JSON.stringify(posts[0]?.body)).toContain('not authorised');
    expect(posts[0]?.body.response_type).toBe('ephemeral');
  });
});
