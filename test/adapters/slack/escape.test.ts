import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackAdapter } from '../../../adapters/slack/adapter.js';
import type { Reply } from '../../../src/bus/types.js';
import { makeEvent } from '../../../src/notify/events.js';
import { SlackPeer, type SlackPostedMessage } from '../../peers/slack-peer.js';
import { bareConfig, makeAdapter, NOTIFY_CHANNEL } from './harness.js';

/**
 * Untrusted words (a VM name, a command's output, an error) in a Slack message: `<!channel>`,
 * `<!here>` or `<@U…>` must show as text and never notify anyone, in the plain `text` (what the
 * notification and the push show) as in the blocks.
 */
let peer: SlackPeer;
let adapter: SlackAdapter;
let cleanup: () => void;

beforeAll(async () => {
  peer = await SlackPeer.start();
  const made = bareConfig(peer);
  cleanup = made.cleanup;
  adapter = makeAdapter(made.config).adapter;
});
afterAll(async () => {
  await peer?.stop();
  cleanup?.();
});

const HOSTILE = 'vm <!channel> & <!here> <@U0ADMIN> <https://evil.example|click>';

/**
 * Every string Slack parses for mentions in a message: `text` and each mrkdwn text (plain_text
 * objects, e.g. headers and button labels, are shown literally and never parsed).
 */
function allTexts(m: SlackPostedMessage): string[] {
  const out: string[] = m.text ? [m.text] : [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object' && (v as { type?: unknown }).type !== 'plain_text')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'text' && typeof x === 'string') out.push(x);
        else walk(x);
      }
  };
  walk(m.blocks ?? []);
  return out;
}

function expectInert(messages: SlackPostedMessage[]): void {
  expect(messages.length).toBeGreaterThan(0);
  const texts = messages.flatMap(allTexts);
  for (const t of texts) {
    expect(t).not.toContain('<!channel>');
    expect(t).not.toContain('<!here>');
    expect(t).not.toContain('<https://evil');
    expect(t).not.toMatch(/&amp;(lt|gt|amp);/); // escaped once, not twice
  }
  expect(texts.some((t) => t.includes('&lt;!channel&gt;'))).toBe(true);
}

describe('Slack messages escape untrusted text', () => {
  it('a notification whose title carries <!channel> shows it, in text and blocks, without a ping', async () => {
    const before = peer.messages.length;
    await adapter.deliver(
      makeEvent('test.failed', {
        host: 'hv01',
        key: 'k1',
        title: `Upgrade test failed on ${HOSTILE}`,
        data: { error: `VM ${HOSTILE} did not start` },
      }),
      { id: 'd1', attempt: 1 },
    );
    const posted = peer.messages.slice(before);
    expect(posted.every((m) => m.channel === NOTIFY_CHANNEL)).toBe(true);
    expectInert(posted);
  });

  it('a command result, refusal and confirmation prompt carrying <!channel> never ping', async () => {
    const before = peer.messages.length;
    const reply = adapter.replyFor({
      channel: 'slack',
      data: { channel: peer.workspace.channelId, command: 'status', user: peer.workspace.userId },
    }) as Reply;
    await reply.progress('checking', HOSTILE);
    await reply.refused(`cannot reach ${HOSTILE}`);
    await reply.result({ status: 'failed', exitCode: 1, message: `VM ${HOSTILE} is down`, data: {} });
    await reply.confirm({
      token: 't',
      command: 'rollback',
      argv: [],
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
      text: `Run hv rollback on ${HOSTILE}?`,
      approvalsNeeded: 1,
    });
    expectInert(peer.messages.slice(before));
  });
});
