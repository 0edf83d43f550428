/** One inbound message from a mail source, handed over until it is `done()`. */
export interface IncomingMail {
  /** The RFC 5322 message as the server holds it (its header only when `truncated`). */
  raw: Buffer;
  /** The message's size on the server, in bytes. */
  size: number;
  /** True when the message is larger than the source's limit: `raw` is its header only. */
  truncated: boolean;
  /** Where it came from, for logs (e.g. `imap:INBOX/42`); not an identity. */
  ref: string;
  /**
   * Marks the message processed so that it is never handed over again (also across restarts).
   * Call it once the message is handled or durably queued; a message whose handler throws, or that
   * is never `done()`, is handed over again on the next round.
   */
  done(): Promise<void>;
}

/**
 * Where inbound command mail comes from, apart from the MTA pipe (`hv email-intake`): an IMAP
 * mailbox. `start` returns once the source runs; it keeps going (reconnecting) until `stop`.
 */
export interface MailSource {
  start(onMail: (m: IncomingMail) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}
