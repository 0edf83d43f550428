import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackAdapter } from '../../../adapters/slack/adapter.js';
import { postInteractive, postSlashCommand, SlackPeer } from '../../peers/slack-peer.js';
import { FakeBus } from '../chat-contract.js';
import { bareConfig, makeAdapter, SIGNING_SECRET, until } from './harness.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

let peer: SlackPeer;
let adapter: SlackAdapter;
let cleanup: () => void;
let url: string;
const bus = new FakeBus();

beforeAll(async () => {
  peer = await SlackPeer.start();
  const port = await freePort();
  const made = bareConfig(peer, { mode: 'http', port });
  cleanup = made.cleanup;
  adapter = makeAdapter(made.config).adapter;
  await adapter.start({ bus });
  url = `http://127.0.0.1:${port}/slack/events`;
});
afterAll(async () => {
  await adapter?.stop();
  await peer?.stop();
  cleanup?.();
});

describe('Slack adapter in HTTP mode (bolt HTTPReceiver on /slack/events)', () => {
  it('a correctly signed /hv status is acknowledged and reaches the bus', async () => {
    const r = await postSlashCommand(url, SIGNING_SECRET, { text: 'status', trigger_id: 'trig-ok' });
    expect(r.status).toBe(200);
    expect(r.latencyMs).toBeLessThan(3_000);
    const sub = await bus.waitForSubmit(0);
    expect(sub.req).toMatchObject({
      id: `slack:${peer.workspace.teamId}:trig-ok`,
      command: 'status',
      actor: { channel: 'slack', id: `${peer.workspace.teamId}:${peer.workspace.userId}` },
    });
  });

  it('a wrong signature gets 401 and never reaches the bus', async () => {
    const before = bus.submits.length;
    const r = await postSlashCommand(
      url,
      SIGNING_SECRET,
      { text: 'upgrade-test' },
      { signature: `v0=${'0'.repeat(64)}` },
    );
    expect(r.status).toBe(401);
    const other = await postSlashCommand(url, 'not-the-secret', { text: 'upgrade-test' });
    expect(other.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(bus.submits.length).toBe(before);
  });

  it('a 6-minute-old timestamp gets 401 and never reaches the bus, signed correctly or not', async () => {
    const before = bus.submits.length;
    const old = Math.floor(Date.now() / 1000) - 6 * 60;
    const r = await postSlashCommand(url, SIGNING_SECRET, { text: 'upgrade-test' }, { timestamp: old });
    expect(r.status).toBe(401);
    const click = await postInteractive(
      url,
      SIGNING_SECRET,
      { actions: [{ action_id: 'hv_confirm', value: 'tok' }] },
      { timestamp: old },
    );
    expect(click.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(bus.submits.length).toBe(before);
    expect(bus.confirms.length).toBe(0);
  });

  it('a signed confirm click reaches bus.confirm', async () => {
    const r = await postInteractive(url, SIGNING_SECRET, {
      actions: [{ action_id: 'hv_confirm', value: 'tok-1' }],
      message: { type: 'message', ts: '1.000001', text: 'Confirm hv rollback?' },
    });
    expect(r.status).toBe(200);
    const c = await until(() => bus.confirms[0], 'the click');
    expect(c.token).toBe('tok-1');
  });
});
