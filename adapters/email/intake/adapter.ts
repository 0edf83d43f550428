import { join } from 'node:path';
import type { AdapterHost, Reply, ReplyAddress } from '../../../src/bus/types.js';
import type { AdapterContext, CommandIntake } from '../../../src/ports/channel.js';
import type { EmailChannel, EmailIntake } from '../schema.js';
import { sendMail } from '../transport.js';
import { createPipeline } from './pipeline.js';
import { MailReply, type MailReplyData, mailReplyData } from './reply.js';
import { type MailSource, spoolSource } from './spool.js';

/**
 * The email channel's command intake (in the chat process): the spool that `hv email-intake` fills
 * and, with `intake.imap`, an IMAP mailbox; every message goes through one pipeline into the bus,
 * and leaves its queue only once handled.
 */
export function emailIntake(
  c: EmailChannel & { intake: EmailIntake },
  ctx: AdapterContext,
): Required<Omit<CommandIntake, 'reconnect'>> {
  const name = c.name ?? 'email';
  const chatState = ctx.config.chatops.stateDir;
  const sources: MailSource[] = [];
  const replyFor = (data: MailReplyData): Reply =>
    new MailReply(
      {
        channel: name,
        address: c.intake.address,
        host: ctx.config.host,
        send: (mail) => sendMail(c, ctx, { ...mail, date: ctx.now() }),
      },
      data,
    );

  return {
    async start({ bus }: AdapterHost) {
      const handle = createPipeline({
        bus,
        intake: c.intake,
        channel: name,
        stateDir: join(chatState, 'email', name),
        replyFor,
        log: ctx.log,
        now: ctx.now,
      });
      const onMail = async (m: { raw: Buffer; done(): Promise<void> }) => {
        await handle(m.raw);
        await m.done();
      };
      const spool = spoolSource(chatState, ctx.log);
      sources.push(spool);
      if (c.intake.imap) {
        // Loaded only when configured: imapflow is not parsed otherwise.
        let mod: typeof import('./imap.js');
        try {
          mod = await import('./imap.js');
        } catch (e) {
          throw new Error(
            `email channel "${name}": intake.imap is set but the IMAP source cannot be loaded (${(e as Error).message}); remove intake.imap or install a build of hv with IMAP support`,
          );
        }
        const imap = mod.imapSource(c.intake.imap, {
          readSecret: ctx.readSecret,
          log: ctx.log,
          stateDir: join(chatState, 'email', name, 'imap'),
        });
        sources.push(imap);
        await imap.start(onMail);
      }
      await spool.start(onMail);
      ctx.log('info', 'email intake started', { channel: name, imap: !!c.intake.imap });
    },
    async stop() {
      for (const s of sources.splice(0)) await s.stop();
    },
    replyFor(address: ReplyAddress): Reply | undefined {
      if (address.channel !== name) return undefined;
      return replyFor(mailReplyData(address.data));
    },
  };
}
