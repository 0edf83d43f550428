import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { createAuditKey, readAuditKey } from '../audit-key.js';

/** What a confirmation token is bound to: a token for one request cannot confirm another. */
export interface TokenFields {
  requestId: string;
  command: string;
  /** actorKey of the requester. */
  requester: string;
  expiresAt: string;
}

/** `<id>.<mac>`: 96 random bits, then 128 bits of HMAC-SHA256, both base64url (39 characters). */
const SHAPE = /^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}$/;
const MAC_BYTES = 16;

/**
 * Confirmation tokens (the value of a Confirm button, the `[hv:<token>]` tag of a confirmation
 * mail): `<random id>.<HMAC(key, id|request|command|requester|expiry)>`, keyed by the root-only
 * `<state>/confirm.key` (0600, made on first use like audit.key). A token hv did not make, or one
 * whose stored request was altered, does not verify.
 */
export class ConfirmTokens {
  private key: Buffer | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly now: () => Date,
    private readonly warn: (msg: string, fields: Record<string, unknown>) => void = () => {},
  ) {}

  private secret(): Buffer {
    if (this.key) return this.key;
    const path = join(this.stateDir, 'confirm.key');
    const read = readAuditKey(path);
    if (read.state === 'present')
      for (const problem of read.problems) this.warn('confirm key unsafe', { path, problem });
    this.key = read.state === 'present' ? read.key : createAuditKey(path, this.now());
    return this.key;
  }

  private mac(id: string, f: TokenFields): Buffer {
    return createHmac('sha256', this.secret())
      .update([id, f.requestId, f.command, f.requester, f.expiresAt].join('|'))
      .digest()
      .subarray(0, MAC_BYTES);
  }

  issue(f: TokenFields): string {
    const id = randomBytes(12).toString('base64url');
    return `${id}.${this.mac(id, f).toString('base64url')}`;
  }

  /** Shaped like a token hv makes (checked before anything is looked up). */
  wellFormed(token: string): boolean {
    return SHAPE.test(token);
  }

  /** The token's HMAC matches these fields. */
  verify(token: string, f: TokenFields): boolean {
    if (!SHAPE.test(token)) return false;
    const [id = '', mac = ''] = token.split('.');
    const given = Buffer.from(mac, 'base64url');
    const want = this.mac(id, f);
    return given.length === want.length && timingSafeEqual(given, want);
  }
}
