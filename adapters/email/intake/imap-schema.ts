import { z } from 'zod';
import { AbsPath } from '../../../src/config/fields.js';

/**
 * IMAP intake settings (placeholder: the IMAP source's own branch owns this file and may add keys).
 * The password is read from a file (`passwordFile`), never inline.
 */
export const ImapSettings = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(993),
  secure: z.boolean().default(true),
  user: z.string().min(1),
  passwordFile: AbsPath,
  /** Where command mail arrives. */
  mailbox: z.string().min(1).default('INBOX'),
  /** Where processed mail is moved (created when missing), so a restart never reprocesses it. */
  processedMailbox: z.string().min(1).default('hv-processed'),
});
export type ImapSettings = z.infer<typeof ImapSettings>;
