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
  CommandIntake,
  Delivery,
  Notifier,
} from '../../src/ports/channel.js';
import type { EmailChannel } from './schema.js';
import { sendMail } from './transport.js';

/** A Message-ID derived from the delivery id: a resent delivery carries the same one. */
export function messageId(deliveryId: string, host: string): string {
  const left = deliveryId.replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]/g, '.');
  return `<${left}@${host.replace(/[^A-Za-z0-9.-]/g, '-')}.hv.invalid>`;
}

interface Mail {
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
}

/**
 * The email channel: one mail per event, or a digest per period; nodemailer over SMTP. With
 * `intake`, also a command intake (loaded only then: mailauth and the pipeline stay unparsed).
 */
export const email: ChannelFactory<EmailChannel, ChannelAdapter & Notifier & Partial<CommandIntake>> = {
  type: 'email',
  async create(c, ctx: AdapterContext): Promise<ChannelAdapter & Notifier & Partial<CommandIntake>> {
    const intake = c.intake
      ? (await import('./intake/adapter.js')).emailIntake({ ...c, intake: c.intake }, ctx)
      : {};
    const name = c.name ?? 'email';
    const host = ctx.config.host;

    async function send(mail: Mail, delivery: Delivery): Promise<void> {
      await sendMail(c, ctx, {
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
    }

    const footer = (delivery: Delivery) =>
      `\n--\nSent by hv on ${host} (channel ${name}, delivery ${delivery.id}).\n`;

    return {
      ...intake,
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
