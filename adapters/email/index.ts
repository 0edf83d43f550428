import nodemailer from 'nodemailer';
import type { HvEvent } from '../../src/events.js';
import { periodOf } from '../../src/notify/digest.js';
import {
  digestSubject,
  renderDigestHtml,
  renderDigestText,
  renderHtml,
  renderText,
  subject,
} from '../../src/notify/templates.js';
import type {
  AdapterContext,
  ChannelAdapter,
  ChannelFactory,
  Delivery,
  Notifier,
} from '../../src/ports/channel.js';
import { DeliveryError } from '../../src/ports/channel.js';
import type { EmailChannel } from './schema.js';

/** A Message-ID derived from the delivery id: a resent delivery carries the same one. */
export function messageId(deliveryId: string, host: string): string {
  const left = deliveryId.replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]/g, '.');
  return `<${left}@${host.replace(/[^A-Za-z0-9.-]/g, '-')}.hv.invalid>`;
}

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

interface Mail {
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
}

/** The email channel: one mail per event, or a digest per period; nodemailer over SMTP. */
export const email: ChannelFactory<EmailChannel, ChannelAdapter & Notifier> = {
  type: 'email',
  create(c, ctx: AdapterContext): ChannelAdapter & Notifier {
    const name = c.name ?? 'email';
    const timeoutMs = (c.timeoutSec ?? ctx.config.notify.timeoutSec) * 1000;
    const server = `${c.smtp.host}:${c.smtp.port}`;
    const host = ctx.config.host;

    async function send(mail: Mail, delivery: Delivery): Promise<void> {
      let pass: string | undefined;
      if (c.smtp.passwordFile) {
        try {
          pass = ctx.readSecret(c.smtp.passwordFile);
        } catch (e) {
          throw new DeliveryError(`SMTP password: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      // A transport per message: nothing stays connected between (rare) notifications, and a hung
      // server is dropped by nodemailer's own timeouts, so no socket outlives the attempt.
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
        name: host,
      });
      try {
        await transport.sendMail({
          from: c.from,
          to: c.to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          messageId: messageId(delivery.id, host),
          date: ctx.now(),
          headers: {
            'Auto-Submitted': 'auto-generated',
            'X-Hv-Delivery': delivery.id,
            ...mail.headers,
          },
        });
      } catch (e) {
        throw toDeliveryError(e, server);
      } finally {
        transport.close();
      }
    }

    const footer = (delivery: Delivery) =>
      `\n--\nSent by hv on ${host} (channel ${name}, delivery ${delivery.id}).\n`;

    return {
      name,
      type: 'email',
      async deliver(event: HvEvent, delivery: Delivery) {
        await send(
          {
            subject: subject(event),
            text: renderText(event) + footer(delivery),
            html: renderHtml(event),
            headers: { 'X-Hv-Event': event.type },
          },
          delivery,
        );
      },
      async sendDigest(events: HvEvent[], delivery: Delivery) {
        const first = events[0];
        if (!first) return;
        const p = periodOf(c.digest ?? 'daily', new Date(first.at));
        const period = { kind: p.kind, label: p.label };
        await send(
          {
            subject: digestSubject(host, events, period),
            text: renderDigestText(host, events, period) + footer(delivery),
            html: renderDigestHtml(host, events, period),
            headers: { 'X-Hv-Event': 'digest' },
          },
          delivery,
        );
      },
    };
  },
};
