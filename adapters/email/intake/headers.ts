/**
 * The header block of a raw message, read without a mail library: what `hv email-intake` needs to
 * tell mail from garbage (it must start fast and load nothing heavy), and the fields as sent.
 */

/** A header block starting at byte 0: `Name: value` lines (and folded continuations) up to a blank line. */
export function headerBlock(raw: Buffer): string | undefined {
  const text = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString('latin1');
  const end = /\r?\n\r?\n/.exec(text);
  const block = end ? text.slice(0, end.index) : text;
  const lines = block.split(/\r?\n/);
  if (!lines.length || !/^[!-9;-~]+:/.test(lines[0] ?? '')) return undefined;
  for (const line of lines) if (!/^[!-9;-~]+:/.test(line) && !/^[ \t]/.test(line)) return undefined;
  return block;
}

/** Header names (lower-case) of a header block, one entry per field, in order. */
export function headerNames(block: string): string[] {
  return block
    .split(/\r?\n/)
    .filter((l) => !/^[ \t]/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase());
}

/** The fields of a header block: lower-case name → unfolded values, in order. */
export function headerFields(block: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const field of block.split(/\r?\n(?![ \t])/)) {
    const i = field.indexOf(':');
    if (i <= 0) continue;
    const name = field.slice(0, i).trim().toLowerCase();
    const value = field
      .slice(i + 1)
      .replace(/\r?\n[ \t]+/g, ' ')
      .trim();
    if (!Object.hasOwn(out, name)) out[name] = [];
    out[name]?.push(value);
  }
  return out;
}

/**
 * Is this an RFC 5322 message at all: a header block with a From field. (The MTA's pipe hands hv
 * whatever it got; anything else is EX_DATAERR.)
 */
export function looksLikeMail(raw: Buffer): boolean {
  const block = headerBlock(raw);
  return block !== undefined && headerNames(block).includes('from');
}
