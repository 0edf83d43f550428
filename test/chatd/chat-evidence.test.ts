import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { commandRegistry } from '../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../src/bus/bus.js';
import { EngineServer } from '../../src/chatd/engine-server.js';
import { type Link, socketLink } from '../../src/chatd/transport.js';
import { parseConfig } from '../../src/config/load.js';
import {
  type ConfirmWindow,
  confirmedBy,
  openWindow,
  readEvidence,
} from '../../src/engine/confirm-window.js';
import { createServices } from '../../src/services.js';
import { until } from '../adapters/slack/harness.js';
import { sandboxConfig } from '../fixtures/chat.js';

/**
 * The engine's side of chat evidence (issue 16): the chat process's `connected` reports become
 * `chat` evidence of the open window, for configured chat channels only, and a reconnect request
 * reaches the chat process.
 */
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function engine() {
  const dir = mkdtempSync(join(tmpdir(), 'hv-evidence-'));
  const config = parseConfig(
    sandboxConfig(dir, {
      notify: {
        channels: [
          {
            type: 'slack',
            name: 'slack',
            mode: 'socket',
            botTokenFile: join(dir, 'bot'),
            appTokenFile: join(dir, 'app'),
            channel: 'C1',
          },
          { type: 'wall', name: 'wall', command: ['true'] },
        ],
      },
      chatops: { socket: join(dir, 'run', 'chat.sock') },
    }),
    channelTypes,
  );
  const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
  const services = createServices(config, {
    channels: channelTypes,
    log: (_level, msg, fields) => logs.push({ msg, fields }),
  });
  const bus: HostedCommandBus = createCommandBus(services, commandRegistry);
  const server = new EngineServer();
  const uid = process.getuid?.() ?? 0;
  await server.start({
    services,
    bus,
    socketPath: config.chatops.socket,
    uid,
    gid: process.getgid?.() ?? 0,
    sendSecrets: false,
  });
  const socket = connect(config.chatops.socket);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const link: Link = socketLink(socket);
  const received: Record<string, unknown>[] = [];
  link.onMessage((text) => received.push(JSON.parse(text) as Record<string, unknown>));
  link.send({ t: 'hello', v: 1, pid: process.pid });
  await until(() => received.some((m) => m.t === 'welcome'), 'the welcome');
  cleanup = async () => {
    link.close('test over');
    await server.stop();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { services, server, link, received, logs };
}

const window = (openedAt: Date): ConfirmWindow => ({
  pid: process.pid,
  id: 'w1',
  operation: 'system-upgrade',
  requester: 'slack:T:U',
  openedAt: openedAt.toISOString(),
  deadline: new Date(openedAt.getTime() + 60_000).toISOString(),
  wants: ['chat'],
  chatChannels: ['slack'],
  activated: '/nix/store/new',
  previousSystem: '/nix/store/old',
});

describe('chat evidence in the engine', () => {
  it('a connection before the window does not confirm it; one after does; other channels are ignored', async () => {
    const { services, server, link, received } = await engine();
    const opened = new Date();
    const w = window(opened);
    openWindow(services.paths, w);
    // A report of a connection made before the window opened (a late message) is recorded with its
    // own time, and confirmedBy does not count it.
    link.send({
      t: 'connected',
      channel: 'slack',
      at: new Date(opened.getTime() - 5000).toISOString(),
      detail: 'Slack Socket Mode hello',
    });
    // Not a chat channel, and not a channel at all: nothing recorded.
    link.send({ t: 'connected', channel: 'wall', at: new Date().toISOString(), detail: 'forged' });
    link.send({ t: 'connected', channel: 'nope', at: new Date().toISOString(), detail: 'forged' });
    await until(() => readEvidence(services.paths, w).length === 1, 'the early report');
    expect(confirmedBy(w, readEvidence(services.paths, w))).toBeUndefined();

    // The daemon asks the chat process to reconnect; its fresh connection confirms the window.
    expect(server.requestReconnect(w.id)).toBe(true);
    await until(
      () => received.some((m) => m.t === 'reconnect' && m.window === 'w1'),
      'the reconnect request',
    );
    // A time in the future is not believed: the engine's own clock is used instead.
    link.send({
      t: 'connected',
      channel: 'slack',
      at: new Date(Date.now() + 3_600_000).toISOString(),
      detail: 'Slack Socket Mode hello',
    });
    await until(() => confirmedBy(w, readEvidence(services.paths, w)), 'confirmation');
    expect(confirmedBy(w, readEvidence(services.paths, w))).toBe('confirmed by chat reconnection (slack)');
    const ev = readEvidence(services.paths, w);
    expect(ev).toHaveLength(1);
    expect(Date.parse(ev[0]?.at ?? '')).toBeLessThanOrEqual(Date.now());
    expect(ev[0]).toMatchObject({ kind: 'chat', channel: 'slack', detail: 'Slack Socket Mode hello' });
  });
});
