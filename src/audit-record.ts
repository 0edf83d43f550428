/** The shapes of audit records (src/audit.ts writes them, src/audit-chain.ts links them). */

/** Who asked: a unix user on the CLI, a chat identity, a verified mail sender, or the daemon. */
export interface Actor {
  /** `cli`, `daemon`, or the channel type of the adapter that received the request (`slack`, …). */
  channel: string;
  /** Stable identity, e.g. `root`, `T0123:U0456`, `user:1111`, `alice@example.org`. */
  id: string;
  display?: string;
  /** Discord roles etc. that may grant a role. */
  groups?: string[];
}

export interface AuditEntry {
  actor: Actor;
  operation: string;
  args?: Record<string, unknown>;
  /** allowed | denied | a command status such as passed, failed, applied. */
  result: string;
  details?: Record<string, unknown>;
  requestId?: string;
}

/** A line of `audit.jsonl`: `mac` is HMAC-SHA256 (audit key) over the record without it. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  at: string;
  host: string;
  /** `mac` of the previous record (or the last `hash` of a sealed unkeyed prefix; GENESIS first). */
  prev: string;
  mac: string;
}

/** A record written before the chain was keyed: `hash` is an unkeyed sha256 (forgeable). */
export interface LegacyAuditRecord extends AuditEntry {
  seq: number;
  at: string;
  host: string;
  prev: string;
  hash: string;
}
