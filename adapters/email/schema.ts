import { z } from 'zod';
import { AbsPath, channelBase } from '../../src/config/fields.js';
import { ImapSettings } from './intake/imap-schema.js';

const Address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be an email address like ops@example.org');

/** A DNS server as `host` or `host:port` (IPv6 in brackets: `[::1]:53`). */
const DnsServer = z
  .string()
  .regex(
    /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.:-]+)(:\d{1,5})?$/,
    'must be a DNS server address like "127.0.0.1:5353" or "[::1]:53"',
  );

/**
 * Commands by email (issue 14): mail to `address`, piped in by the MTA (`hv email-intake`) or read
 * over IMAP. Only mail with an aligned DKIM signature (or a trusted MTA's dmarc=pass) counts.
 */
export const EmailIntake = z.strictObject({
  /** The address commands are sent to; replies come from it, and mail from it is never answered. */
  address: Address,
  /** Resolvers for the DKIM key and DMARC lookups (default: the system's). */
  dnsServers: z.array(DnsServer).min(1).optional(),
  /**
   * The authserv-id of a local MTA whose `Authentication-Results: <id>; dmarc=pass` is trusted
   * (it must remove such headers arriving from outside). Unset: only DKIM counts.
   */
  trustedAuthservId: z.string().min(1).optional(),
  /** Larger messages are refused unread (bytes). */
  maxBytes: z
    .number()
    .int()
    .min(1024)
    .max(50 * 1024 * 1024)
    .default(256 * 1024),
  /** Commands per authenticated sender a minute; more are dropped. */
  ratePerMinute: z.number().int().min(1).max(1000).default(10),
  imap: ImapSettings.optional(),
});
export type EmailIntake = z.infer<typeof EmailIntake>;

/** Email over SMTP (nodemailer); optionally gathered into a digest per period. */
export const EmailChannel = z.strictObject({
  type: z.literal('email'),
  ...channelBase,
  from: Address,
  to: z.array(Address).min(1, 'must list at least one recipient'),
  smtp: z.strictObject({
    host: z.string().min(1),
    port: z
      .number()
      .int('must be a port number from 1 to 65535 (25, 465 or 587 for SMTP)')
      .min(1, 'must be a port number from 1 to 65535 (25, 465 or 587 for SMTP)')
      .max(65535, 'must be a port number from 1 to 65535 (25, 465 or 587 for SMTP)')
      .default(25),
    secure: z.boolean().default(false),
    user: z.string().min(1).optional(),
    passwordFile: AbsPath.optional(),
    /** Refuse to send without STARTTLS (recommended off loopback). */
    requireTLS: z.boolean().default(false),
  }),
  digest: z.enum(['daily', 'weekly', 'monthly']).nullable().default(null),
  /** Also take commands by email. */
  intake: EmailIntake.optional(),
});
export type EmailChannel = z.infer<typeof EmailChannel>;
