import { z } from 'zod';
import { AbsPath, channelBase } from '../../src/config/fields.js';

const Address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'must be an email address like ops@example.org');

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
});
export type EmailChannel = z.infer<typeof EmailChannel>;
