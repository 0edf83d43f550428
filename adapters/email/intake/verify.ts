import type { Evidence } from '../../../src/bus/types.js';
import type { EvidenceVerifier, ProvenRequest } from '../../../src/ports/channel.js';
import { EmailChannel, type EmailIntake } from '../schema.js';
import { authenticate } from './authenticate.js';
import { automatic } from './filters.js';
import { type CommandMail, parseMail } from './parse.js';

/** The evidence scheme of a command mail: the raw message, which the engine checks itself. */
export const EMAIL_SCHEME = 'email-dkim';
/**
 * Set by the chat process when it refused a message before the engine saw it whole (too large,
 * rate-limited): the engine refuses and audits it with that reason. Claiming it can only refuse.
 */
export const INTAKE_REFUSED = 'x-hv-intake-refused';

/** The message's bytes travel as a latin1 string (one char a byte), so 8-bit mail stays exact. */
export const mailToEvidence = (raw: Buffer, headers: Record<string, string> = {}): Evidence => ({
  scheme: EMAIL_SCHEME,
  headers,
  body: raw.toString('latin1'),
});
export const mailFromEvidence = (e: Evidence): Buffer => Buffer.from(e.body, 'latin1');

/** A message judged: who sent it and what it asks, or why it counts as nobody's. */
export type Judged =
  | { ok: true; mail: CommandMail; proven: ProvenRequest; how: string }
  | { ok: false; reason: string; mail?: CommandMail; claimed?: string; temporary?: boolean };

/**
 * Everything hv decides about a message before the bus: size, RFC 3834 (automatic mail), the
 * sender's authentication, a command or token. The chat process runs it to decide whether to
 * answer at all; the engine runs it again on the same bytes (verifyEmail), and only the engine's
 * verdict lets anything run.
 */
export async function judge(raw: Buffer, intake: EmailIntake): Promise<Judged> {
  if (raw.length > intake.maxBytes)
    return {
      ok: false,
      reason: `message of ${raw.length} bytes is larger than intake.maxBytes (${intake.maxBytes})`,
    };
  let mail: CommandMail;
  try {
    mail = await parseMail(raw);
  } catch (e) {
    return { ok: false, reason: `not a readable message: ${(e as Error).message}` };
  }
  const auto = automatic(mail.headers, mail.from, intake.address);
  if (auto) return { ok: false, reason: `not answered: ${auto}`, mail, claimed: mail.from };
  const auth = await authenticate(raw, mail, intake);
  if (!auth.ok)
    return {
      ok: false,
      reason: `not authenticated: ${auth.reason}`,
      mail,
      claimed: auth.claimed,
      ...(auth.temporary ? { temporary: true } : {}),
    };
  if (!mail.token && !mail.command)
    return {
      ok: false,
      reason: 'no command in the Subject or the first body line',
      mail,
      claimed: mail.from,
    };
  return {
    ok: true,
    mail,
    how: auth.how,
    proven: {
      actor: auth.actor,
      requestId: mail.messageId,
      // Always set (empty without one), so this message cannot be submitted as some other command.
      command: mail.command ?? '',
      argv: mail.argv,
      ...(mail.token ? { token: mail.token } : {}),
    },
  };
}

/** The engine's check of an email channel's evidence (scheme `email-dkim`): throws the reason. */
export const verifyEmail: EvidenceVerifier = async (channel, evidence) => {
  const settings = EmailChannel.parse(channel);
  if (!settings.intake)
    throw new Error(`email channel "${settings.name ?? 'email'}" takes no commands (no intake)`);
  if (evidence.scheme !== EMAIL_SCHEME) throw new Error(`not ${EMAIL_SCHEME} evidence`);
  const refused = evidence.headers[INTAKE_REFUSED];
  if (refused) throw new Error(`refused by the chat process: ${refused.slice(0, 200)}`);
  const judged = await judge(mailFromEvidence(evidence), settings.intake);
  if (!judged.ok) throw new Error(judged.reason);
  return judged.proven;
};
