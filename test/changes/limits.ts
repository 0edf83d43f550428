import type { SlackPostedMessage } from '../peers/slack-web-api.js';

/**
 * Each platform's documented limits, checked on what the loopback peers received: a message over
 * any of them would be rejected (or cut by the platform) on the real service.
 */

/** Slack: 50 blocks, header 150, section text 3000, 10 fields of 2000, message text 40000. */
export function slackLimitErrors(m: SlackPostedMessage): string[] {
  const errors: string[] = [];
  const blocks = (m.blocks ?? []) as {
    type?: string;
    text?: { text?: string };
    fields?: { text?: string }[];
    elements?: { text?: string | { text?: string } }[];
  }[];
  if (blocks.length > 50) errors.push(`${blocks.length} blocks`);
  if ((m.text ?? '').length > 40_000) errors.push(`text of ${(m.text ?? '').length}`);
  for (const [i, b] of blocks.entries()) {
    const t = b.text?.text ?? '';
    if (b.type === 'header' && t.length > 150) errors.push(`header ${i}: ${t.length}`);
    if (b.type === 'section' && t.length > 3000) errors.push(`section ${i}: ${t.length}`);
    if ((b.fields ?? []).length > 10) errors.push(`section ${i}: ${b.fields?.length} fields`);
    for (const f of b.fields ?? [])
      if ((f.text ?? '').length > 2000) errors.push(`field in ${i}: ${f.text?.length}`);
    if (b.type === 'context')
      for (const e of b.elements ?? []) {
        const s = typeof e.text === 'string' ? e.text : (e.text?.text ?? '');
        if (s.length > 3000) errors.push(`context ${i}: ${s.length}`);
      }
  }
  return errors;
}

interface DiscordWire {
  content?: string;
  embeds?: { title?: string; description?: string; footer?: { text?: string } }[];
}

/** Discord: content 2000, 10 embeds, title 256, description 4096, 6000 characters of embeds. */
export function discordLimitErrors(wire: Record<string, unknown>): string[] {
  const w = wire as DiscordWire;
  const errors: string[] = [];
  if ((w.content ?? '').length > 2000) errors.push(`content ${w.content?.length}`);
  const embeds = w.embeds ?? [];
  if (embeds.length > 10) errors.push(`${embeds.length} embeds`);
  let total = 0;
  for (const [i, e] of embeds.entries()) {
    if ((e.title ?? '').length > 256) errors.push(`title ${i}: ${e.title?.length}`);
    if ((e.description ?? '').length > 4096) errors.push(`description ${i}: ${e.description?.length}`);
    total += (e.title ?? '').length + (e.description ?? '').length + (e.footer?.text ?? '').length;
  }
  if (total > 6000) errors.push(`embeds total ${total}`);
  return errors;
}

/** RFC 5322: a header line is at most 998 characters (nodemailer folds longer subjects). */
export const SUBJECT_MAX = 998;
