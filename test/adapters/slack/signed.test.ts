import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostedCommandBus } from '../../../src/bus/bus.js';
import type { CommandRequest, Evidence } from '../../../src/bus/types.js';
import { RecordingReply } from '../../bus/recording-reply.js';
import { buildInteractive, buildSlashCommand, defaultWorkspace } from '../../peers/slack-payloads.js';
import { SlackPeer, signSlackRequest } from '../../peers/slack-peer.js';
import { realBusConfig, SIGNING_SECRET } from './harness.js';

/**
 * The engine's side of Slack HTTP mode: the real command bus with a Slack HTTP channel checks each
 * request's signed body (adapters/slack/verify.ts) and refuses a request whose own fields say
 * something else than what Slack signed, as a compromised chat process might send.
 */
let peer: SlackPeer;
let bus: HostedCommandBus;
let dir: string;
let cleanup: () => void;

beforeAll(async () => {
  peer = await SlackPeer.start();
  const made = realBusConfig(peer, { mode: 'http' });
  bus = made.bus;
  dir = made.dir;
  cleanup = made.cleanup;
});
afterAll(async () => {
  await bus?.stop();
  await peer?.stop();
  cleanup?.();
});

const ws = defaultWorkspace;
const me = { channel: 'slack', id: `${ws.teamId}:${ws.userId}` };
const slackReply = () => new RecordingReply({ channel: 'slack', data: {} });
const auditLines = () => {
  const f = join(dir, 'state', 'audit.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).length : 0;
};

function evidenceOf(body: string, secret = SIGNING_SECRET, timestamp?: number): Evidence {
  return { scheme: 'slack-v0', headers: { ...signSlackRequest(secret, body, timestamp) }, body };
}

/** A slash command as Slack signs it, and the request an honest adapter makes of it. */
function signedSlash(text: string, trigger: string): { evidence: Evidence; req: CommandRequest } {
  const body = new URLSearchParams(
    buildSlashCommand(ws, { text, trigger_id: trigger }, 'http://127.0.0.1:9/unused'),
  ).toString();
  const [command = 'help', ...argv] = text.split(' ');
  const evidence = evidenceOf(body);
  return {
    evidence,
    req: {
      id: `slack:${ws.teamId}:${trigger}`,
      command,
      argv,
      actor: { ...me, display: 'admin' },
      replyTo: { channel: 'slack', data: {} },
      evidence,
    },
  };
}

function signedClick(actionId: string, token: string): Evidence {
  const payload = buildInteractive(ws, { actions: [{ action_id: actionId, value: token }] }, 'http://x/');
  return evidenceOf(new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
}

describe('Slack HTTP mode: the bus checks what Slack signed', () => {
  it('an honest signed request is served', async () => {
    const { req } = signedSlash('status', 'trig-honest');
    const reply = slackReply();
    expect((await bus.submit(req, reply)).kind).toBe('accepted');
    await bus.idle();
    expect(reply.results).toHaveLength(1);
  });

  it.each([
    ['another command', { command: 'upgrade-test' }, /command differs/],
    ['other arguments', { argv: ['--to', '42'] }, /arguments differ/],
    ['another user', { actor: { channel: 'slack', id: `${ws.teamId}:U0OTHER` } }, /actor differs/],
    ['another request id', { id: `slack:${ws.teamId}:trig-other` }, /request id differs/],
    ['added groups', { actor: { ...me, groups: [`${ws.teamId}:U0ROOT`] } }, /groups differ/],
  ])(
    'a request claiming %s than its signed body is refused, answers nothing, and is audited as unverified',
    async (_what, change, reason) => {
      const { req } = signedSlash('status', `trig-${Math.random()}`);
      const audited = auditLines();
      const reply = slackReply();
      const out = await bus.submit({ ...req, ...change } as CommandRequest, reply);
      expect(out).toMatchObject({ kind: 'refused', reason: expect.stringMatching(reason) });
      expect(reply.refusals).toEqual([]);
      expect(reply.results).toEqual([]);
      // One audit line naming the claimed identity as unverified (these are capped at 30 a minute).
      expect(auditLines()).toBe(audited + 1);
      const last = JSON.parse(
        readFileSync(join(dir, 'state', 'audit.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .at(-1) ?? '{}',
      );
      expect(last).toMatchObject({ result: 'denied', details: { identity: 'unverified' } });
    },
  );

  it('a body altered after signing, an unsigned request, another key or an old signature is refused', async () => {
    const { req, evidence } = signedSlash('status', 'trig-altered');
    const altered = { ...evidence, body: evidence.body.replace('text=status', 'text=upgrade-test') };
    const cases: [Evidence | undefined, RegExp][] = [
      [altered, /signature mismatch/],
      [undefined, /no signature/],
      [evidenceOf(evidence.body, 'another-secret'), /signature mismatch/],
      [evidenceOf(evidence.body, SIGNING_SECRET, Math.floor(Date.now() / 1000) - 600), /5 minutes/],
      [{ ...evidence, scheme: 'email-dkim' }, /scheme/],
    ];
    for (const [ev, reason] of cases) {
      const out = await bus.submit({ ...req, command: 'upgrade-test', evidence: ev }, slackReply());
      expect(out).toMatchObject({ kind: 'refused', reason: expect.stringMatching(reason) });
      if (ev) expect(await bus.verify('slack', ev)).toBe(false);
    }
    expect(await bus.verify('slack', evidence)).toBe(true);
  });

  it('a signed click counts only for its own token and its own button', async () => {
    const cancelClick = signedClick('hv_cancel', 'tok-A');
    const asConfirm = await bus.confirm('tok-A', me, slackReply(), cancelClick);
    expect(asConfirm).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/button differs/) });
    const confirmClick = signedClick('hv_confirm', 'tok-A');
    const otherToken = await bus.confirm('tok-B', me, slackReply(), confirmClick);
    expect(otherToken).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/token differs/) });
    // The genuine click gets to the bus's own checks (this token is unknown).
    const reply = slackReply();
    const genuine = await bus.confirm('tok-A', me, reply, confirmClick);
    expect(genuine.kind).toBe('refused');
    expect(reply.refusals[0]).toMatch(/unknown or was already used|not one hv issued/);
  });
});
