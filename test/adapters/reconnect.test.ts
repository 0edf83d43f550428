import { afterEach, describe, expect, it } from 'vitest';
import type { SlackAdapter } from '../../adapters/slack/adapter.js';
import { freePort } from '../fixtures/processes.js';
import { SlackPeer } from '../peers/slack-peer.js';
import { FakeBus } from './chat-contract.js';
import { type DiscordWorld, startDiscord } from './discord/harness.js';
import { bareConfig, makeAdapter, until } from './slack/harness.js';

/**
 * Chat evidence for a confirmation window (issue 16): each adapter drops its platform connection
 * on `reconnect()`, reports the fresh one through `AdapterHost.connected`, and reports nothing while
 * the platform cannot be reached; once it can, the connection is made and reported.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Seen {
  detail: string;
  at: number;
}

async function slack(
  mode: 'socket' | 'http',
): Promise<{ peer: SlackPeer; adapter: SlackAdapter; seen: Seen[] }> {
  const peer = await SlackPeer.start();
  const made = bareConfig(peer, mode === 'http' ? { mode: 'http', port: await freePort() } : {});
  const { adapter } = makeAdapter(made.config);
  const seen: Seen[] = [];
  await adapter.start({ bus: new FakeBus(), connected: (detail) => seen.push({ detail, at: Date.now() }) });
  cleanups.push(async () => {
    await adapter.stop();
    await peer.stop();
    made.cleanup();
  });
  return { peer, adapter, seen };
}

describe('Slack Socket Mode: reconnect for a confirmation window', () => {
  it('reports each hello; a reconnect opens a new connection and reports its hello', async () => {
    const { peer, adapter, seen } = await slack('socket');
    expect(seen.map((s) => s.detail)).toEqual(['Slack Socket Mode hello']);
    const before = Date.now();
    await adapter.reconnect();
    await until(() => seen.length === 2, 'a second hello', 15_000);
    expect(seen[1]?.detail).toBe('Slack Socket Mode hello');
    expect(seen[1]?.at).toBeGreaterThanOrEqual(before);
    expect(peer.connectionsOpened).toBe(2);
    expect(peer.openConnections).toBe(1);
  });

  it('a peer that refuses connections: nothing is reported until it accepts them again', async () => {
    const { peer, adapter, seen } = await slack('socket');
    peer.reachability.set(true);
    await adapter.reconnect();
    await sleep(3000);
    expect(seen).toHaveLength(1);
    expect(peer.reachability.refused).toBeGreaterThan(0);
    expect(peer.openConnections).toBe(0);
    const back = Date.now();
    peer.reachability.set(false);
    await until(() => seen.length === 2, 'the hello once Slack is reachable', 60_000);
    expect(seen[1]?.at).toBeGreaterThanOrEqual(back);
    expect(peer.openConnections).toBe(1);
  }, 90_000);
});

describe('Slack HTTP mode: no connection to renew', () => {
  it('an authenticated auth.test after the reconnect request is the evidence; refused while unreachable', async () => {
    const { peer, adapter, seen } = await slack('http');
    expect(seen).toEqual([]);
    peer.reachability.set(true);
    await adapter.reconnect();
    await sleep(2500);
    expect(seen).toEqual([]);
    peer.reachability.set(false);
    await until(() => seen.length === 1, 'auth.test once Slack is reachable', 30_000);
    expect(seen[0]?.detail).toBe('Slack Web API auth.test (HTTP mode)');
    const last = peer.callsTo('auth.test').at(-1);
    expect(last?.status).toBe(200);
    expect(last?.token).toBe('xoxb-hv-test');
  }, 60_000);
});

describe('Discord: READY and RESUMED are fresh connections', () => {
  let w: DiscordWorld | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
  });

  it('READY at start, RESUMED after a drop, READY of a new session after reconnect(); nothing while cut off', async () => {
    w = await startDiscord({ noStart: true });
    const seen: Seen[] = [];
    await w.adapter.start({
      bus: new FakeBus(),
      connected: (detail) => seen.push({ detail, at: Date.now() }),
    });
    expect(seen.map((s) => s.detail)).toEqual(['Discord gateway READY']);

    w.peer.dropGateway();
    await until(() => seen.length === 2, 'RESUMED after a drop', 20_000);
    expect(seen[1]?.detail).toBe('Discord gateway RESUMED');
    expect(w.peer.resumes).toBe(1);

    await w.adapter.reconnect();
    await until(() => seen.length === 3, 'READY after reconnect', 20_000);
    expect(seen[2]?.detail).toBe('Discord gateway READY');
    expect(w.peer.identifies).toBe(2);

    const peer = w.peer;
    peer.reachability.set(true);
    await w.adapter.reconnect();
    await sleep(3000);
    expect(seen).toHaveLength(3);
    expect(peer.reachability.refused).toBeGreaterThan(0);
    peer.reachability.set(false);
    await until(() => seen.length === 4, 'READY once Discord is reachable', 30_000);
    expect(seen[3]?.detail).toBe('Discord gateway READY');
    // Commands still arrive over the new session.
    const sent = w.command(w.admin, 'status');
    expect((await peer.waitForCallback(sent.id, { timeoutMs: 10_000 })).accepted).toBe(true);
  }, 90_000);
});
