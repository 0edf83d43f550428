import nodemailer from 'nodemailer';
import type { AdapterContext } from '../../src/ports/channel.js';
import { DeliveryError } from '../../src/ports/channel.js';
import type { EmailChannel } from './schema.js';

interface SmtpFailure {
  message?: string;
  code?: string;
  responseCode?: number;
  response?: string;
}

/**
 * SMTP 4xx and connection trouble are temporary (retried with backoff); 5xx is a refusal no retry
 * will fix (bad recipient, relay denied, auth failed): permanent, kept dead and visible.
 */
export function toDeliveryError(e: unknown, server: string): DeliveryError {
  const f = (e ?? {}) as SmtpFailure;
  const code = f.responseCode;
  const text = (f.response ?? f.message ?? String(e)).trim();
  const what = `SMTP ${server}: ${code && !text.startsWith(String(code)) ? `${code} ` : ''}${text}`;
  if (code !== undefined && code >= 500) return new DeliveryError(what, undefined, true);
  return new DeliveryError(what);
}

/** One message as nodemailer takes it (from/to/subject/text/html/headers, threading). */
export type OutgoingMail = Parameters<ReturnType<typeof nodemailer.createTransport>['sendMail']>[0];

/**
 * Send one message through the channel's SMTP server. A transport per message: nothing stays
 * connected between (rare) mails, and a hung server is dropped by nodemailer's own timeouts.
 * Throws a DeliveryError.
 */
export async function sendMail(c: EmailChannel, ctx: AdapterContext, mail: OutgoingMail): Promise<void> {
  const timeoutMs = (c.timeoutSec ?? ctx.config.notify.timeoutSec) * 1000;
  const server = `${c.smtp.host}:${c.smtp.port}`;
  let pass: string | undefined;
  if (c.smtp.passwordFile) {
    try {
      pass = ctx.readSecret(c.smtp.passwordFile);
    } catch (e) {
      throw new DeliveryError(`SMTP password: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const transport = nodemailer.createTransport({
    host: c.smtp.host,
    port: c.smtp.port,
    secure: c.smtp.secure,
    requireTLS: c.smtp.requireTLS,
    ...(c.smtp.user ? { auth: { user: c.smtp.user, pass: pass ?? '' } } : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    dnsTimeout: timeoutMs,
    name: ctx.config.host,
  });
  try {
    await transport.sendMail(mail);
  } catch (e) {
    throw toDeliveryError(e, server);
  } finally {
    transport.close();
  }
}
