import { createHash } from 'node:crypto';
import { type ParsedMail, simpleParser } from 'mailparser';
import { headerBlock, headerFields } from './headers.js';

export { headerBlock, headerFields, headerNames, looksLikeMail } from './headers.js';

/** What hv reads of a command mail. */
export interface CommandMail {
  /** The From address, lower-cased; undefined when there is not exactly one. */
  from: string | undefined;
  /** How many addresses the From header(s) name (more than one never authenticates). */
  fromCount: number;
  /** Message-ID with its angle brackets; a hash of the message when it has none. */
  messageId: string;
  subject: string;
  /** Message-IDs of the thread so far (References, else In-Reply-To). */
  references: string[];
  /** The command name (lower-case), or undefined when neither the Subject nor the body has one. */
  command: string | undefined;
  argv: string[];
  /** A confirmation token from a `[hv:<token>]` Subject tag. */
  token: string | undefined;
  /** Every header field as sent (lower-case name → unfolded values, in order). */
  headers: Record<string, string[]>;
}

/** `[hv:<token>]`: the tag a confirmation prompt's Subject carries and a reply keeps. */
export const TOKEN_TAG = /\[hv:([A-Za-z0-9_-]{8,64}\.[A-Za-z0-9_-]{8,64})\]/;
const TOKEN_TAGS = /\[hv:[^\]]*\]/g;

/** Reply/forward prefixes mail clients put before a Subject (several languages), repeated. */
const PREFIX = /^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rif|antw)\s*(?:\[\d+\])?\s*:\s*)+/i;

/** Words of a command line, split as the chat front ends split them; a leading `hv`/`/hv` dropped. */
function words(line: string): string[] {
  const w = line.trim().split(/\s+/).filter(Boolean);
  if (w[0] && /^\/?hv$/i.test(w[0])) w.shift();
  return w;
}

/** The Subject without reply prefixes and `[hv:…]` tags. */
export function cleanSubject(subject: string): string {
  let s = subject;
  for (let i = 0; i < 5; i++) s = s.replace(PREFIX, '').replace(TOKEN_TAGS, ' ').trim();
  return s;
}

/**
 * The first line that says something: not empty, not quoted (`>`), not a reply's attribution
 * ("On … wrote:"), and before the signature separator (`-- `).
 */
export function firstLine(text: string): string | undefined {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '--' || raw === '-- ') return undefined;
    if (!line || line.startsWith('>')) continue;
    if (/wrote:$|schrieb:$|a écrit\s*:$/i.test(line)) continue;
    return line;
  }
  return undefined;
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * Text of an HTML body where mailparser gave none (an HTML part next to attachments): quoted
 * blocks dropped, one line per block element. Enough to find the first line that says something.
 */
export function htmlText(html: string): string {
  return html
    .replace(/<(head|style|script|blockquote)\b[\s\S]*?<\/\1\s*>/gi, '\n')
    .replace(/<(br|\/p|\/div|\/li|\/h\d|\/tr|p|div|li|tr)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : m;
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    });
}

function addresses(mail: ParsedMail): string[] {
  const from = mail.from;
  if (!from) return [];
  const list = Array.isArray(from) ? from : [from];
  const out: string[] = [];
  const walk = (a: { address?: string; group?: { address?: string }[] }) => {
    if (a.address) out.push(a.address);
    for (const g of a.group ?? []) walk(g);
  };
  for (const f of list) for (const v of f.value) walk(v);
  return out;
}

/**
 * Read a command mail: the command from the Subject (`hv <cmd> [args]`, after Re:/Fwd: and any
 * `[hv:…]` tag) or else from the first non-empty, non-quoted line of the text body (HTML-only mail
 * converted to text by mailparser); quoted lines, the signature and attachments are ignored.
 */
export async function parseMail(raw: Buffer): Promise<CommandMail> {
  const mail = await simpleParser(raw, { skipImageLinks: true, skipTextLinks: true });
  const from = addresses(mail);
  const subject = mail.subject ?? '';
  const token = TOKEN_TAG.exec(subject)?.[1];
  const fromSubject = cleanSubject(subject);
  let line: string | undefined;
  if (/^\/?hv(\s|$)/i.test(fromSubject)) line = fromSubject;
  else line = firstLine(mail.text || (typeof mail.html === 'string' ? htmlText(mail.html) : ''));
  const w = line ? words(line) : [];
  const refs = mail.references ? (Array.isArray(mail.references) ? mail.references : [mail.references]) : [];
  const messageId =
    mail.messageId?.trim() || `<sha256.${createHash('sha256').update(raw).digest('hex')}@hv.invalid>`;
  return {
    from: from.length === 1 ? from[0]?.toLowerCase() : undefined,
    fromCount: from.length,
    messageId,
    subject,
    references: refs.length ? refs : mail.inReplyTo ? [mail.inReplyTo] : [],
    command: w[0]?.toLowerCase(),
    argv: w.slice(1),
    token,
    headers: headerFields(headerBlock(raw) ?? ''),
  };
}
