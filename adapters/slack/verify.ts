import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Evidence } from '../../src/bus/types.js';
import type { ChannelSettings, EvidenceVerifier, ProvenRequest } from '../../src/ports/channel.js';
import { CANCEL_ACTION, CONFIRM_ACTION, KEEP_ACTION } from './blocks.js';
import { clickTeam, commandOfText, slackActorId, slashRequestId } from './request.js';
import { SlackChannel } from './schema.js';

/** Slack's replay window: a request signed more than 5 minutes from now is refused. */
const MAX_SKEW_SEC = 5 * 60;
/** Far above any slash command or button click; the intake refuses bigger bodies long before. */
const MAX_BODY_CHARS = 1024 * 1024;

/**
 * The engine's check of Slack HTTP mode's request signature (scheme `slack-v0`): HMAC-SHA256 of
 * `v0:<timestamp>:<body>` keyed with the channel's signing secret, compared in constant time, with
 * a timestamp within 5 minutes. Then what the signed body itself says: who sent it and what they
 * asked (slash command) or which button with which token they clicked (block_actions). The chat
 * process never holds the signing secret; the bus refuses a request whose fields differ from this.
 * No bolt import: this runs in the engine.
 */
export const verifySlack: EvidenceVerifier = async (channel, evidence, ctx) => {
  const cfg = slackChannel(channel);
  checkSignature(evidence, ctx.readSecret(cfg.signingSecretFile as string), ctx.now());
  return provenOf(evidence.body);
};

function slackChannel(channel: ChannelSettings): SlackChannel {
  const cfg = SlackChannel.parse(channel);
  if (cfg.mode !== 'http' || !cfg.signingSecretFile)
    throw new Error(`slack channel "${cfg.name ?? 'slack'}" is not in HTTP mode; it has no signing secret`);
  return cfg;
}

/** Throws unless the body carries a valid, fresh `slack-v0` signature. */
export function checkSignature(evidence: Evidence, secret: string, now: Date): void {
  if (evidence.scheme !== 'slack-v0') throw new Error(`unexpected evidence scheme ${evidence.scheme}`);
  if (evidence.body.length > MAX_BODY_CHARS) throw new Error('body too large');
  const ts = evidence.headers['x-slack-request-timestamp'] ?? '';
  const sig = evidence.headers['x-slack-signature'] ?? '';
  if (!/^\d{1,12}$/.test(ts)) throw new Error('missing or malformed x-slack-request-timestamp');
  if (Math.abs(now.getTime() / 1000 - Number(ts)) > MAX_SKEW_SEC)
    throw new Error('x-slack-request-timestamp is more than 5 minutes from now');
  if (!/^v0=[0-9a-f]{64}$/.test(sig)) throw new Error('missing or malformed x-slack-signature');
  if (!secret) throw new Error('the signing secret file is empty');
  const want = createHmac('sha256', secret).update(`v0:${ts}:${evidence.body}`).digest();
  if (!timingSafeEqual(want, Buffer.from(sig.slice(3), 'hex'))) throw new Error('signature mismatch');
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** What a signed body asks: a slash command, or a click on hv's Confirm / Cancel button. */
export function provenOf(body: string): ProvenRequest {
  const form = new URLSearchParams(body);
  const payload = form.get('payload');
  if (payload !== null) return provenClick(payload);
  const team = form.get('team_id');
  const user = form.get('user_id');
  const trigger = form.get('trigger_id');
  const text = form.get('text');
  if (!team || !user || !trigger || text === null || !form.get('command'))
    throw new Error('neither a slash command nor a button click');
  const { command, argv } = commandOfText(text);
  return {
    actor: { channel: 'slack', id: slackActorId(team, user) },
    requestId: slashRequestId(team, trigger),
    command,
    argv,
  };
}

function provenClick(payload: string): ProvenRequest {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(payload) as Record<string, unknown>;
  } catch {
    throw new Error('interactive payload is not JSON');
  }
  if (!p || typeof p !== 'object' || p.type !== 'block_actions')
    throw new Error('interactive payload is not a block_actions click');
  const actions = Array.isArray(p.actions) ? (p.actions as Record<string, unknown>[]) : [];
  const action = actions[0];
  const actionId = str(action?.action_id);
  const token = str(action?.value);
  if (
    actions.length !== 1 ||
    !token ||
    (actionId !== CONFIRM_ACTION && actionId !== CANCEL_ACTION && actionId !== KEEP_ACTION)
  )
    throw new Error('not a click on an hv Confirm, Cancel or Keep button');
  const u = p.user as { id?: unknown; team_id?: unknown } | undefined;
  const userId = str(u?.id);
  const team = clickTeam({
    user: { team_id: str(u?.team_id) },
    team: { id: str((p.team as { id?: unknown } | null | undefined)?.id) },
  });
  if (!userId || !team) throw new Error('interactive payload names no user or team');
  return {
    actor: { channel: 'slack', id: slackActorId(team, userId) },
    token,
    action: actionId === CONFIRM_ACTION ? 'confirm' : actionId === KEEP_ACTION ? 'keep' : 'cancel',
  };
}
