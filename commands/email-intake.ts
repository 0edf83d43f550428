import { z } from 'zod';
import { looksLikeMail } from '../adapters/email/intake/headers.js';
import { spool } from '../adapters/email/intake/spool.js';
import { chatUser } from '../src/chatd/chat-user.js';
import { HV } from '../src/cli-name.js';
import { Exit, HvError } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

/** Read all of stdin. */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * `hv email-intake`: one message on stdin from an MTA's pipe transport, queued durably in the chat
 * process's spool (`<chatops.stateDir>/mail-spool`), which the email intake reads whenever it runs.
 * It never runs an operation itself and needs no root: it runs as the chat user. Exit codes are
 * sysexits, so the MTA does the right thing: 0 queued, 65 not a message (bounced), 75 try later.
 */
export const emailIntakeCommand: Command<Record<string, never>> = {
  name: 'email-intake',
  summary: 'queue one mail message from stdin for the email command intake (MTA pipe transport)',
  role: 'viewer',
  cliOnly: true,
  fastStart: true,
  unprivileged: true,
  standalone: { failureExit: Exit.tryLater },
  args: z.strictObject({}),
  async run(ctx): Promise<CommandResult> {
    let raw = await readStdin();
    // An mbox envelope line ("From sender date", Postfix pipe flag F, procmail) is not part of the
    // message: the signature covers what follows it.
    if (raw.subarray(0, 5).toString('latin1') === 'From ') {
      const nl = raw.indexOf(10);
      raw = nl < 0 ? Buffer.alloc(0) : raw.subarray(nl + 1);
    }
    if (!looksLikeMail(raw))
      return {
        status: 'refused',
        exitCode: Exit.notMessage,
        message: 'not a mail message (no header block with a From field); nothing was queued',
        data: { bytes: raw.length },
      };
    const takers = ctx.config.notify.channels.filter(
      (c) => c.type === 'email' && (c as { intake?: unknown }).intake !== undefined,
    );
    if (!takers.length)
      throw new HvError(
        'config-invalid',
        `no email channel has "intake" in the config, so nothing would read this message; add "intake": {"address": …} to the email channel, or stop piping mail to "${HV} email-intake"`,
      );
    const dir = ctx.config.chatops.stateDir;
    // As root (an MTA pipe running as root): the queued file must be the chat user's to read.
    const owner = process.getuid?.() === 0 ? chatUser(ctx.config.chatops.user) : undefined;
    let path: string;
    try {
      path = spool(dir, raw, Date.now(), owner);
    } catch (e) {
      throw new HvError(
        'internal',
        `cannot queue the message in ${dir}/mail-spool: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; it must be writable by the user the MTA runs "${HV} email-intake" as (chatops.user)`,
      );
    }
    return { status: 'ok', exitCode: Exit.ok, message: `queued ${path}`, data: { path, bytes: raw.length } };
  },
};
