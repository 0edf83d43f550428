import { createHmac } from 'node:crypto';
import {
  buildInteractive,
  buildSlashCommand,
  defaultWorkspace,
  type InteractiveInput,
  type SlackWorkspace,
  type SlashCommandPayload,
} from './slack-payloads.js';

/** The two headers Slack adds to every HTTP request it sends to an app. */
export interface SlackSignatureHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
}

/** Signs a request body as Slack does: `v0=` + HMAC-SHA256(secret, `v0:${ts}:${body}`). */
export function signSlackRequest(
  signingSecret: string,
  body: string,
  timestamp: number = Math.floor(Date.now() / 1000),
): SlackSignatureHeaders {
  const digest = createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex');
  return { 'x-slack-signature': `v0=${digest}`, 'x-slack-request-timestamp': String(timestamp) };
}

export interface SignedPostOptions {
  /** Unix seconds; default now. Use an old one to test replay protection. */
  timestamp?: number;
  /** Replaces the computed signature (to test rejection). */
  signature?: string;
}

export interface SignedPostResult {
  status: number;
  body: string;
  /** From sending the request to receiving the full response. */
  latencyMs: number;
}

/** POSTs `body` to a bolt HTTP receiver (e.g. `http://127.0.0.1:PORT/slack/events`), signed. */
export async function postSignedSlackRequest(
  url: string,
  signingSecret: string,
  body: string,
  contentType: string,
  opts: SignedPostOptions = {},
): Promise<SignedPostResult> {
  const headers = signSlackRequest(signingSecret, body, opts.timestamp);
  if (opts.signature !== undefined) headers['x-slack-signature'] = opts.signature;
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': contentType, ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text, latencyMs: performance.now() - started };
}

/** POSTs a slash command form body, as Slack does in HTTP mode. */
export function postSlashCommand(
  url: string,
  signingSecret: string,
  fields: Partial<SlashCommandPayload>,
  opts: SignedPostOptions & { workspace?: SlackWorkspace; responseUrl?: string } = {},
): Promise<SignedPostResult> {
  const payload = buildSlashCommand(
    opts.workspace ?? defaultWorkspace,
    fields,
    opts.responseUrl ?? 'http://127.0.0.1:9/unused-response-url',
  );
  const body = new URLSearchParams(payload).toString();
  return postSignedSlackRequest(url, signingSecret, body, 'application/x-www-form-urlencoded', opts);
}

/** POSTs an interactive payload (`payload=<json>` form body), as Slack does for button clicks. */
export function postInteractive(
  url: string,
  signingSecret: string,
  input: InteractiveInput,
  opts: SignedPostOptions & { workspace?: SlackWorkspace; responseUrl?: string } = {},
): Promise<SignedPostResult> {
  const payload = buildInteractive(
    opts.workspace ?? defaultWorkspace,
    input,
    opts.responseUrl ?? 'http://127.0.0.1:9/unused-response-url',
  );
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  return postSignedSlackRequest(url, signingSecret, body, 'application/x-www-form-urlencoded', opts);
}
