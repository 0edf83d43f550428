import { promises as dns } from 'node:dns';
import { dkimVerify, dmarc } from 'mailauth';
import type { Actor } from '../../../src/audit.js';
import type { CommandMail } from './parse.js';

/** Where DKIM keys and DMARC records are looked up, and whose Authentication-Results count. */
export interface AuthOptions {
  dnsServers?: string[];
  trustedAuthservId?: string;
}

/** Who sent a message, as far as its signatures prove it; `reason` says why nobody, when `actor` is absent. */
export type AuthResult =
  | { ok: true; actor: Actor; how: string }
  | { ok: false; reason: string; claimed?: string; temporary?: boolean };

/** Header fields the signature must cover: the sender, the command (Subject) and the dedupe key. */
const MUST_SIGN = ['from', 'subject', 'message-id'];
/** Fields that must appear once: a second one could be shown to hv while the signature covers the other. */
const SINGLE = ['from', 'subject', 'message-id', 'sender', 'date'];

/** A mailauth resolver bound to the configured DNS servers (the system's when none). */
export function resolverFor(servers: string[] | undefined) {
  const r = new dns.Resolver({ timeout: 3000, tries: 2 });
  if (servers?.length) r.setServers(servers);
  return (name: string, rrtype: string) => r.resolve(name, rrtype) as Promise<string[] | string[][]>;
}

const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

/**
 * A trusted local MTA's verdict: the topmost Authentication-Results field (the one the last hop, our
 * own MTA, added) with the configured authserv-id, saying dmarc=pass for the From domain.
 */
function authservPass(mail: CommandMail, authservId: string, from: string): string | undefined {
  const top = mail.headers['authentication-results']?.[0];
  if (!top) return undefined;
  const [id, ...rest] = top.split(';');
  if (id?.trim().split(/\s+/)[0]?.toLowerCase() !== authservId.toLowerCase()) return undefined;
  const domain = domainOf(from);
  for (const part of rest) {
    const m = /^\s*dmarc\s*=\s*pass\b.*\bheader\.from\s*=\s*"?([^\s;"]+)/i.exec(
      part.replace(/\([^)]*\)/g, ' '),
    );
    if (m?.[1]?.toLowerCase() === domain) return `dmarc=pass by ${authservId}`;
  }
  return undefined;
}

/**
 * Who sent `raw`: its From address, only when a valid DKIM signature covering From, Subject and
 * Message-ID (and the whole body: no `l=`) comes from a domain aligned with the From domain
 * (relaxed, organisational domain) and the domain's DMARC policy, if any, agrees; or, when
 * `trustedAuthservId` is set, when that MTA's Authentication-Results says dmarc=pass for the From
 * domain. SPF never counts: it says which server sent the mail, not who wrote it.
 */
export async function authenticate(raw: Buffer, mail: CommandMail, opts: AuthOptions): Promise<AuthResult> {
  const claimed = mail.from;
  if (mail.fromCount !== 1 || !claimed)
    return { ok: false, reason: mail.fromCount ? 'more than one From address' : 'no From address' };
  for (const name of SINGLE)
    if ((mail.headers[name]?.length ?? 0) > 1)
      return { ok: false, reason: `more than one ${name} field`, claimed };
  const actor: Actor = { channel: 'email', id: claimed };
  if (opts.trustedAuthservId) {
    const how = authservPass(mail, opts.trustedAuthservId, claimed);
    if (how) return { ok: true, actor, how };
  }
  const resolver = resolverFor(opts.dnsServers);
  let verified: Awaited<ReturnType<typeof dkimVerify>>;
  try {
    verified = await dkimVerify(raw, { resolver });
  } catch (e) {
    return { ok: false, reason: `DKIM check failed: ${(e as Error).message}`, claimed };
  }
  const sigs = verified.results.filter((r) => r.signingDomain);
  if (!sigs.length) return { ok: false, reason: 'no DKIM signature', claimed };
  const fromDomain = domainOf(claimed);
  const problems: string[] = [];
  let temporary = false;
  for (const r of sigs) {
    const d = r.signingDomain.toLowerCase();
    const extra = r as unknown as { signingHeaders?: { keys?: string }; canonBodyLengthLimited?: boolean };
    if (r.status.result !== 'pass') {
      if (r.status.result === 'temperror') temporary = true;
      problems.push(`DKIM ${r.status.result} for d=${d}${r.status.comment ? ` (${r.status.comment})` : ''}`);
      continue;
    }
    if (!r.status.aligned) {
      problems.push(`DKIM signature by d=${d} does not align with the From domain ${fromDomain}`);
      continue;
    }
    if (extra.canonBodyLengthLimited) {
      problems.push(`DKIM signature by d=${d} covers only part of the body (l=)`);
      continue;
    }
    const signed = (extra.signingHeaders?.keys ?? '').toLowerCase().split(/\s*:\s*/);
    const missing = MUST_SIGN.filter((h) => !signed.includes(h));
    if (missing.length) {
      problems.push(`DKIM signature by d=${d} does not cover ${missing.join(', ')}`);
      continue;
    }
    // The domain's own DMARC policy may ask for strict alignment; SPF is left out on purpose.
    const policy = await dmarc({
      headerFrom: claimed,
      spfDomains: [],
      dkimDomains: [{ id: r.id, domain: d, aligned: r.status.aligned, underSized: r.status.underSized }],
      resolver,
    }).catch(() => false as const);
    const verdict = policy ? policy.status.result : 'none';
    if (verdict !== 'pass' && verdict !== 'none') {
      if (verdict === 'temperror') temporary = true;
      problems.push(`DMARC ${verdict} for ${fromDomain} with the DKIM signature by d=${d}`);
      continue;
    }
    return { ok: true, actor, how: `dkim=pass d=${d}${verdict === 'pass' ? ', dmarc=pass' : ''}` };
  }
  return { ok: false, reason: problems.join('; '), claimed, ...(temporary ? { temporary } : {}) };
}
