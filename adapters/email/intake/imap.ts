import type { AdapterContext } from '../../../src/ports/channel.js';
import type { ImapSettings } from './imap-schema.js';
import type { MailSource } from './spool.js';

/**
 * Placeholder: the IMAP source (imapflow; IDLE, else polling; processed mail moved to
 * `processedMailbox`) is built on its own branch, which replaces this file.
 */
export function imapSource(
  _settings: ImapSettings,
  _deps: { readSecret(path: string): string; log: AdapterContext['log']; stateDir: string },
): MailSource {
  throw new Error('the IMAP source is not part of this build');
}
