import type { SlackWorkspace } from './slack-payloads.js';

/** How a SlackPeer is set up; every field has a default. */
export interface SlackPeerOptions {
  /** Bot tokens that auth.test and chat.* accept. Default `['xoxb-hv-test']`. */
  botTokens?: string[];
  /** App-level tokens that apps.connections.open accepts. Default `['xapp-1-hv-test']`. */
  appTokens?: string[];
  /** Overrides for the ids the peer uses (team, app, bot, default user and channel). */
  workspace?: Partial<SlackWorkspace>;
  /** When given, only these channels exist; others answer `channel_not_found`. */
  channels?: string[];
  /** How long send* helpers wait for an ack before resolving with `acked: false`. Default 3000 (Slack's deadline). */
  ackTimeoutMs?: number;
}

/** One Web API request the app made. */
export interface SlackApiCall {
  method: string;
  /** Form or JSON fields; `blocks`, `attachments`, `metadata` are decoded from their JSON strings. */
  body: Record<string, unknown>;
  token: string | undefined;
  at: number;
  status: number;
  response: Record<string, unknown>;
}

/** A failure to serve instead of the real answer (see {@link SlackPeer.failNext}). */
export interface SlackFailure {
  /** HTTP status; 429 adds `Retry-After`. Default 200 with `{ok:false, error}` when `error` is set. */
  status?: number;
  /** Seconds, for 429. Default 1. */
  retryAfter?: number;
  /** Slack error code, e.g. 'channel_not_found' (HTTP 200, `ok: false`). */
  error?: string;
  /** How many consecutive calls fail. Default 1. */
  times?: number;
}

/** The outcome of delivering one Socket Mode envelope. */
export interface SlackAck {
  envelopeId: string;
  acked: boolean;
  /** Time from sending the envelope to receiving the ack (or to giving up). */
  latencyMs: number;
  /** The ack's `payload` (e.g. `{ text }` for a slash command answered in the ack). */
  payload: Record<string, unknown> | undefined;
  /** The response_url the envelope carried, if any. */
  responseUrl: string | undefined;
}

/** A POST the app made to a response_url. */
export interface ResponseUrlPost {
  url: string;
  body: Record<string, unknown>;
  at: number;
}
