import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelTypes } from '../../../adapters/registry.js';
import type { SlackAdapter } from '../../../adapters/slack/adapter.js';
import { commandRegistry } from '../../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import { makeEvent } from '../../../src/notify/events.js';
import { DeliveryError } from '../../../src/ports/channel.js';
import { createServices } from '../../../src/services.js';
import { SlackPeer } from '../../peers/slack-peer.js';
import {
  bareConfig,
  buttonsOf,
  click,
  makeAdapter,
  messageText,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from './harness.js';

let peer: SlackPeer;
let bus: HostedCommandBus;
let adapter: SlackAdapter;
let cleanup: () => void;
const ADA = 'U0ADA';
const BOB = 'U0BOB';

beforeAll(async () => {
  peer = await SlackPeer.start();
  const made = bareConfig(peer);
  cleanup = made.cleanup;
  const dir = made.dir;
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
    chatops: {
      roles: {
        [`slack:${peer.workspace.teamId}:${ADA}`]: 'admin',
        [`slack:${peer.workspace.teamId}:${BOB}`]: 'admin',
      },
      approvals: { rollback: 2 },
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  const config = parseConfig(raw, channelTypes);
  bus = createCommandBus(createServices(config, { channels: channelTypes }), {
    ...commandRegistry,
    configPath: join(dir, 'config.json'),
    pollMs: 50,
  });
  adapter = makeAdapter(config).adapter;
  await adapter.start({ bus });
});
afterAll(async () => {
  await adapter?.stop();
  await bus?.stop();
  await peer?.stop();
  cleanup?.();
});

describe('Slack: two-admin approval and Web API failures', () => {
  it('approvals = 2: the buttons stay after the first admin, the same admin cannot approve twice, the second admin starts it', async () => {
    const sent = sendSlash(peer, { id: ADA }, 'rollback --to 1');
    await sent.ack;
    const thread = () => threadsSince(peer, peer.workspace.channelId, sent.sentAt);
    const confirm = () =>
      thread()
        .flat()
        .flatMap(buttonsOf)
        .find((b) => b.label.includes('Confirm'));
    const button = await until(confirm, 'confirm button');
    expect(thread().flat().map(messageText).join('\n')).toContain('2 different admins');

    await click(peer, button, ADA);
    await until(
      () =>
        thread()
          .flat()
          .some((m) => messageText(m).includes('1 more admin must approve')),
      'waiting for approval',
    );
    expect(confirm()).toBeDefined();
    await click(peer, button, ADA);
    await until(
      () => peer.messages.find((m) => m.ephemeralTo === ADA && messageText(m).includes('already approved')),
      'refusal of a second approval by the same admin',
    );
    expect(bus.store.unreported()).toEqual([]);

    await click(peer, button, BOB);
    await until(
      () =>
        thread()
          .flat()
          .some((m) => /REFUSED/.test(messageText(m))),
      'the result',
      20_000,
    );
    expect(thread()).toHaveLength(1);
    expect(confirm()).toBeUndefined();
  });

  it('a 5xx from Slack is a retryable DeliveryError; channel_not_found is permanent and names the channel', async () => {
    const ev = makeEvent('update.available', {
      host: 'hv01',
      key: 'k5',
      title: 'NixOS update available',
      data: {},
    });
    peer.failNext('chat.postMessage', { status: 503 });
    const e1 = await adapter.deliver(ev, { id: 'a', attempt: 1 }).then(
      () => undefined,
      (e: unknown) => e as DeliveryError,
    );
    expect(e1).toBeInstanceOf(DeliveryError);
    expect(e1?.permanent).toBe(false);
    peer.failNext('chat.postMessage', { error: 'channel_not_found' });
    const e2 = await adapter.deliver(ev, { id: 'b', attempt: 1 }).then(
      () => undefined,
      (e: unknown) => e as DeliveryError,
    );
    expect(e2?.permanent).toBe(true);
    expect(e2?.message).toContain('C0NOTIFY');
  });
});
