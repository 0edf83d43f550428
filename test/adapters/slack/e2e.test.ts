import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelTypes } from '../../../adapters/registry.js';
import type { SlackAdapter } from '../../../adapters/slack/adapter.js';
import { commandRegistry } from '../../../commands/index.js';
import type { AuditRecord } from '../../../src/audit.js';
import { createCommandBus, type HostedCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import { createServices } from '../../../src/services.js';
import { auditRecords } from '../../fixtures/chat.js';
import { hvBin, World } from '../../fixtures/world.js';
import { SlackPeer } from '../../peers/slack-peer.js';
import {
  buttonsOf,
  click,
  makeAdapter,
  messageText,
  NOTIFY_CHANNEL,
  redeliver,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from './harness.js';

/**
 * The daemon-side pieces in-process (bus + Slack adapter, as `hv daemon` hosts them) with the real
 * engine on a real Nix behind them, and the real bolt client talking to the loopback Slack peer.
 */
const ADMIN = 'U0ADMIN';
const OPERATOR = 'U0OPER';
const STRANGER = 'U0NOBODY';

let peer: SlackPeer;
let world: World;
let secrets: string;
let bus: HostedCommandBus;
let adapter: SlackAdapter;
let skewMs = 0;

const audit = (): AuditRecord[] => auditRecords(world.paths.audit);

const operations = () =>
  readdirSync(join(world.paths.state, 'operations')).filter(
    (f) => /^op-.*\.json$/.test(f) && !f.includes('.result'),
  );
const channel = () => peer.workspace.channelId;
const team = () => peer.workspace.teamId;

beforeAll(async () => {
  peer = await SlackPeer.start();
  secrets = mkdtempSync(join(tmpdir(), 'hv-slack-secrets-'));
  world = new World({
    branches: ['nixos-24.05'],
    config: {
      notify: { channels: [slackChannelConfig(peer, secrets)] },
      chatops: {
        roles: {
          [`slack:${peer.workspace.teamId}:${ADMIN}`]: 'admin',
          [`slack:${peer.workspace.teamId}:${OPERATOR}`]: 'operator',
        },
        confirmTimeoutSec: 60,
      },
    },
  });
  const config = parseConfig(world.config, channelTypes);
  const services = createServices(config, {
    channels: channelTypes,
    now: () => new Date(Date.now() + skewMs),
  });
  bus = createCommandBus(services, { ...commandRegistry, configPath: world.configPath, pollMs: 100 });
  adapter = makeAdapter(config).adapter;
  await adapter.start({ bus });
});

afterAll(async () => {
  await adapter?.stop();
  await bus?.stop();
  await peer?.stop();
  world?.cleanup();
  if (secrets) rmSync(secrets, { recursive: true, force: true });
});

describe('Slack chat-ops end to end (Socket Mode, real engine)', () => {
  it("an operator's /hv upgrade-test: acked at once, progress and PASSED with the new revision in one thread, through a dropped connection; audited as the Slack identity", async () => {
    const newRev = world.upstream.advance('nixos-24.05', { sleepSec: 4 });
    const started = Date.now();
    const sent = sendSlash(peer, { id: OPERATOR, name: 'oper' }, 'upgrade-test');
    const ack = await sent.ack;
    expect(ack.acked).toBe(true);
    expect(ack.latencyMs).toBeLessThan(3_000);
    // The thread appears with its progress message while the build is still sleeping.
    await until(() => threadsSince(peer, channel(), sent.sentAt)[0]?.length === 2, 'thread with progress');
    peer.dropConnections();
    await peer.waitForSocket(2, { timeoutMs: 20_000 });
    const result = await until(
      () =>
        threadsSince(peer, channel(), sent.sentAt)[0]?.find((m) =>
          messageText(m).includes('Upgrade Test: PASSED'),
        ),
      'the PASSED result in the thread',
      90_000,
    );
    expect(Date.now() - started).toBeGreaterThan(3_000); // longer than the ack deadline
    expect(messageText(result)).toContain(newRev.slice(0, 12));
    const threads = threadsSince(peer, channel(), sent.sentAt);
    expect(threads).toHaveLength(1);
    const [parent, progress] = threads[0] ?? [];
    // The parent's headline is edited right after the result is posted.
    await until(() => messageText(parent as never).includes('PASSED'), 'the headline on the parent');
    // Progress was edited in place, not posted as a flood.
    expect(progress?.updates).toBeGreaterThan(0);
    expect(threads[0]?.length).toBe(3);
    const mine = audit().filter((r) => r.actor.id === `${team()}:${OPERATOR}`);
    expect(mine.map((r) => [r.actor.channel, r.operation, r.result])).toEqual([
      ['slack', 'upgrade-test', 'allowed'],
      ['slack', 'upgrade-test', 'passed'],
    ]);
    expect(world.activations().map((a) => a.action)).toEqual(['test']);
  });

  it("an unknown user's /hv status is denied, audited, and nothing runs", async () => {
    const before = operations().length;
    const sent = sendSlash(peer, { id: STRANGER }, 'status');
    expect((await sent.ack).acked).toBe(true);
    const refusal = await until(
      () => peer.messages.find((m) => m.ephemeralTo === STRANGER && m.postedAt >= sent.sentAt),
      'ephemeral refusal',
    );
    expect(messageText(refusal)).toContain('not authorised');
    await bus.idle();
    expect(threadsSince(peer, channel(), sent.sentAt)).toEqual([]);
    expect(operations().length).toBe(before);
    expect(audit().at(-1)).toMatchObject({
      actor: { channel: 'slack', id: `${team()}:${STRANGER}` },
      operation: 'status',
      result: 'denied',
    });
  });

  it("an admin's /hv system-upgrade runs only after an admin's click; another user's click and an expired one are refused", async () => {
    // An expired confirmation first.
    const old = sendSlash(peer, { id: ADMIN }, 'system-upgrade');
    await old.ack;
    const oldButton = await until(
      () =>
        threadsSince(peer, channel(), old.sentAt)
          .flat()
          .flatMap(buttonsOf)
          .find((b) => b.label.includes('Confirm')),
      'confirm button',
    );
    skewMs = 61_000;
    await click(peer, oldButton, ADMIN);
    await until(
      () => peer.messages.find((m) => m.ephemeralTo === ADMIN && messageText(m).includes('expired')),
      'expiry refusal',
    );
    skewMs = 0;

    const sent = sendSlash(peer, { id: ADMIN }, 'system-upgrade');
    expect((await sent.ack).acked).toBe(true);
    const button = await until(
      () =>
        threadsSince(peer, channel(), sent.sentAt)
          .flat()
          .flatMap(buttonsOf)
          .find((b) => b.label.includes('Confirm')),
      'confirm button',
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(world.activations().map((a) => a.action)).toEqual(['test']);
    await click(peer, button, OPERATOR);
    await until(
      () =>
        peer.messages.find((m) => m.ephemeralTo === OPERATOR && messageText(m).includes('not authorised')),
      "refusal of the operator's click",
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(world.activations().map((a) => a.action)).toEqual(['test']);

    await click(peer, button, ADMIN);
    const result = await until(
      () => threadsSince(peer, channel(), sent.sentAt)[0]?.find((m) => /APPLIED/.test(messageText(m))),
      'the APPLIED result',
      60_000,
    );
    expect(messageText(result)).toContain('system-upgrade');
    expect(world.activations().map((a) => a.action)).toEqual(['test', 'switch']);
    // The buttons are gone once confirmed.
    expect(threadsSince(peer, channel(), sent.sentAt).flat().flatMap(buttonsOf)).toEqual([]);
    const ops = audit()
      .filter((r) => r.operation === 'system-upgrade')
      .map((r) => [r.actor.id.split(':')[1], r.result]);
    expect(ops).toEqual([
      [ADMIN, 'allowed'],
      [ADMIN, 'denied'], // expired
      [ADMIN, 'allowed'],
      [OPERATOR, 'denied'],
      [ADMIN, 'confirmed'],
      [ADMIN, 'applied'],
    ]);
  });

  it('the same envelope delivered twice starts one operation', async () => {
    const before = operations().length;
    const sent = sendSlash(peer, { id: OPERATOR }, 'check-updates');
    await sent.ack;
    const again = await redeliver(peer, sent);
    expect(again.acked).toBe(true);
    await until(
      () =>
        threadsSince(peer, channel(), sent.sentAt)[0]?.some((m) =>
          /UP-TO-DATE|UPDATE-AVAILABLE/.test(messageText(m)),
        ),
      'the check result',
      60_000,
    );
    await bus.idle();
    expect(operations().length).toBe(before + 1);
    expect(threadsSince(peer, channel(), sent.sentAt)).toHaveLength(1);
    const allowed = audit().filter((r) => r.operation === 'check-updates' && r.result === 'allowed');
    expect(allowed).toHaveLength(1);
  });

  it('update.available posts one Block Kit message to the channel; a 429 with Retry-After: 2 is honoured', async () => {
    world.upstream.advance('nixos-24.05');
    const before = peer.messages.filter((m) => m.channel === NOTIFY_CHANNEL).length;
    const callsBefore = peer.callsTo('chat.postMessage').length;
    peer.failNext('chat.postMessage', { status: 429, retryAfter: 2 });
    // Asynchronously: the peer lives in this process and must keep answering.
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [hvBin, 'check-updates', '--json', '--config', world.configPath],
        (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
      );
    });
    expect(r.code, r.stderr).toBe(100);
    const posts = peer.callsTo('chat.postMessage').slice(callsBefore);
    const notices = peer.messages.filter((m) => m.channel === NOTIFY_CHANNEL).slice(before);
    expect(notices).toHaveLength(1);
    expect(notices[0]?.blocks?.length).toBeGreaterThan(0);
    expect(messageText(notices[0] as never)).toContain('NixOS update available');
    expect(posts.map((c) => c.status)).toEqual([429, 200]);
    expect((posts[1]?.at ?? 0) - (posts[0]?.at ?? 0)).toBeGreaterThanOrEqual(2_000);
  });
});
