/**
 * Why a message must never be answered (RFC 3834 §2, §3.1): automatic mail, bounces and list traffic
 * get no reply and run nothing, so two robots never talk to each other. Undefined: a person wrote it.
 * `headers`: lower-case name → values as sent; `from`: the From address, lower-cased.
 */
export function automatic(
  headers: Record<string, string[]>,
  from: string | undefined,
  own: string,
): string | undefined {
  const h = (name: string) => headers[name]?.[0];
  const auto = h('auto-submitted');
  if (
    auto !== undefined &&
    auto
      .trim()
      .toLowerCase()
      .split(/[\s;(]/)[0] !== 'no'
  )
    return `auto-submitted: ${auto.trim().slice(0, 40)}`;
  const precedence = h('precedence')?.trim().toLowerCase();
  if (precedence && ['bulk', 'list', 'junk', 'auto_reply'].includes(precedence))
    return `precedence: ${precedence}`;
  if (headers['list-id']) return 'list mail (List-Id)';
  if (headers['x-autoreply'] || headers['x-autorespond']) return 'auto-reply (X-Autoreply)';
  const returnPath = h('return-path');
  if (returnPath !== undefined && /^<?\s*>?$/.test(returnPath.trim())) return 'bounce (empty return path)';
  const local = from?.split('@')[0] ?? '';
  if (/^(mailer-daemon|postmaster|bounces?|noreply|no-reply|do-not-reply)([+-].*)?$/i.test(local))
    return `automatic sender (${local})`;
  if (from !== undefined && from === own.toLowerCase()) return 'from hv itself';
  return undefined;
}
