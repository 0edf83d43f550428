import { z } from 'zod';
import { AbsPath } from '../../../src/config/fields.js';

const port = 'must be a port number from 1 to 65535 (993 for IMAPS, 143 for STARTTLS)';

/**
 * Where the email intake reads command mail over IMAP (the email channel's `intake.imap`). The
 * mailbox is hv's own: every message in it not yet processed is a candidate command. Processed
 * messages are flagged and moved to `processedMailbox`, so a restart never reads them again.
 */
export const ImapSettings = z
  .strictObject({
    host: z.string().min(1),
    port: z.number().int(port).min(1, port).max(65535, port).default(993),
    /** TLS from the first byte (IMAPS). Without it, STARTTLS is required unless the host is loopback. */
    secure: z.boolean().default(true),
    user: z.string().min(1),
    passwordFile: AbsPath,
    mailbox: z.string().min(1).default('INBOX'),
    processedMailbox: z.string().min(1).default('hv-processed'),
    /** Seconds between checks when the server has no IDLE (and as a safety net when it has). */
    pollSec: z.number().int().min(1).max(3600).default(60),
    /** Messages larger than this are handed over as their header only (`truncated`). */
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .max(100 * 1024 * 1024)
      .default(10 * 1024 * 1024),
  })
  .refine((s) => s.processedMailbox !== s.mailbox, {
    path: ['processedMailbox'],
    message: 'must differ from "mailbox" (processed mail is moved there)',
  });
export type ImapSettings = z.infer<typeof ImapSettings>;
