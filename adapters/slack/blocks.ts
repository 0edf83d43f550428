import type { ConfirmationPrompt, WindowNotice } from '../../src/bus/types.js';
import type { HvEvent } from '../../src/events.js';
import { facts, splitMessage, truncate } from '../../src/notify/templates.js';
import type { CommandResult } from '../../src/ports/command.js';

/** A Block Kit block; kept loose on purpose (Slack validates). */
export type Block = Record<string, unknown>;

/** Slack's limits: section text 3000, header 150, 10 fields of 2000, 50 blocks a message. */
const SECTION = 2900;
const MAX_SECTIONS = 30;

export const CONFIRM_ACTION = 'hv_confirm';
export const CANCEL_ACTION = 'hv_cancel';
export const KEEP_ACTION = 'hv_keep';

/**
 * Escape text for Slack (`&`, `<`, `>` are control characters in mrkdwn and in a message's plain
 * `text` alike): `<!channel>` in a VM name or an error must show as text, never ping anyone.
 */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Undo `esc` (text Slack hands back as it was posted), so it can be escaped exactly once again. */
export function unesc(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

const plain = (text: string, limit = 150) => ({
  type: 'plain_text',
  text: text.length > limit ? `${text.slice(0, limit - 1)}…` : text || ' ',
  emoji: true,
});

/** Long text as consecutive code sections, split at line breaks, every line kept. */
export function codeSections(text: string, detailsFile?: string): Block[] {
  const fitted = truncate(text, SECTION * MAX_SECTIONS, detailsFile);
  return splitMessage(fitted, SECTION - 8).map((piece) => ({
    type: 'section',
    text: { type: 'mrkdwn', text: `\`\`\`${esc(piece)}\`\`\`` },
  }));
}

function factFields(pairs: [string, string][]): Block[] {
  const out: Block[] = [];
  for (let i = 0; i < pairs.length; i += 10)
    out.push({
      type: 'section',
      fields: pairs
        .slice(i, i + 10)
        .map(([k, v]) => ({ type: 'mrkdwn', text: `*${esc(k)}*\n${esc(v).slice(0, 1900)}` })),
    });
  return out;
}

/** A notification of the hub as a Block Kit message (and its plain fallback text). */
export function eventMessage(event: HvEvent): { text: string; blocks: Block[] } {
  const blocks: Block[] = [
    { type: 'header', text: plain(event.title) },
    ...factFields(facts(event).filter(([k]) => k !== 'When')),
  ];
  const long = [event.data.error, event.data.output].filter((v) => typeof v === 'string' && v).join('\n\n');
  if (event.title.length > 150) blocks.push(...codeSections(event.title));
  if (long) blocks.push(...codeSections(long, event.detailsFile));
  const context: string[] = [`${esc(event.host)} · ${esc(event.at)}`];
  if (event.next) context.push(`Next: \`${esc(event.next)}\``);
  if (event.detailsFile) context.push(`Details: \`${esc(event.detailsFile)}\``);
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] });
  return { text: esc(`[${event.host}] ${event.title}`), blocks };
}

const ICON: Record<string, string> = {
  ok: ':white_check_mark:',
  'up-to-date': ':white_check_mark:',
  passed: ':white_check_mark:',
  applied: ':white_check_mark:',
  'rolled-back': ':leftwards_arrow_with_hook:',
  'update-available': ':bell:',
  failed: ':x:',
  error: ':x:',
  refused: ':no_entry:',
  busy: ':hourglass:',
};

/** The headline of a result: `PASSED`, `FAILED`, `UPDATE-AVAILABLE`… */
export function headline(command: string, r: CommandResult): string {
  return `${ICON[r.status] ?? ''} ${command}: ${r.status.toUpperCase()}`.trim();
}

const scalar = (v: unknown) =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;

/** Key facts of a result: revisions, toplevel, generations, failed checks. */
export function resultFacts(r: CommandResult): [string, string][] {
  const out: [string, string][] = [];
  const seen = new Set<string>();
  const walk = (obj: Record<string, unknown>, prefix: string, depth: number) => {
    for (const [k, v] of Object.entries(obj)) {
      const name = prefix ? `${prefix} ${k}` : k;
      if (depth < 2 && v && typeof v === 'object' && !Array.isArray(v)) {
        if (/^(available|current|previous|new|tested|system|upgrade|generation)$/i.test(k))
          walk(v as Record<string, unknown>, name, depth + 1);
        continue;
      }
      const s = scalar(v);
      if (s === undefined || s.length > 200 || seen.has(name)) continue;
      if (/rev|revision|toplevel|generation|version|reason|previous|branch|operationId/i.test(name)) {
        seen.add(name);
        out.push([name, s]);
      }
    }
  };
  walk(r.data, '', 0);
  const checks = r.data.checks;
  if (Array.isArray(checks)) {
    const failed = checks
      .filter((c) => c && typeof c === 'object' && (c as { ok?: unknown }).ok === false)
      .map((c) => String((c as { name?: unknown }).name ?? '?'));
    if (failed.length) out.push(['failed checks', failed.join(', ')]);
  }
  return out.slice(0, 20);
}

/** The final message of a command in its thread. */
export function resultMessage(command: string, r: CommandResult): { text: string; blocks: Block[] } {
  const head = headline(command, r);
  const blocks: Block[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${esc(head)}*` } },
    ...codeSections(r.message || r.status),
  ];
  const f = resultFacts(r);
  if (f.length) blocks.push(...factFields(f));
  return { text: esc(`${head}\n${r.message}`.slice(0, 3000)), blocks: blocks.slice(0, 50) };
}

/** A confirmation prompt with Confirm / Cancel buttons carrying the token. */
export function confirmMessage(p: ConfirmationPrompt): { text: string; blocks: Block[] } {
  const who =
    p.approvalsNeeded > 1 ? `${p.approvalsNeeded} different admins must confirm` : 'An admin must confirm';
  return {
    text: esc(`Confirm hv ${[p.command, ...p.argv].join(' ')}? ${p.text}`),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:warning: ${esc(p.text)}` } },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `${who}; expires ${esc(p.expiresAt)}.` }],
      },
      {
        type: 'actions',
        block_id: 'hv_confirmation',
        elements: [
          {
            type: 'button',
            action_id: CONFIRM_ACTION,
            style: 'danger',
            text: plain(`Confirm ${p.command}`),
            value: p.token,
          },
          { type: 'button', action_id: CANCEL_ACTION, text: plain('Cancel'), value: p.token },
        ],
      },
    ],
  };
}

/**
 * The prompt after a click: the same text, no buttons, who did what. `text` is the prompt's text as
 * posted (escaped; Slack hands it back so), `outcome` is mrkdwn made by hv (it may mention the user).
 */
export function settledPrompt(text: string, outcome: string): { text: string; blocks: Block[] } {
  const safe = esc(unesc(text));
  return {
    text: `${safe}\n${outcome}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: safe.slice(0, SECTION) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: outcome }] },
    ],
  };
}

/**
 * A confirmation window (dead-man revert) in a request's thread: until when, what confirms it, and
 * a Keep button when a human may confirm.
 */
export function windowMessage(n: WindowNotice): { text: string; blocks: Block[] } {
  const blocks: Block[] = [{ type: 'section', text: { type: 'mrkdwn', text: `:stopwatch: ${esc(n.text)}` } }];
  if (n.token)
    blocks.push({
      type: 'actions',
      block_id: 'hv_window',
      elements: [
        { type: 'button', action_id: KEEP_ACTION, style: 'primary', text: plain('Keep'), value: n.token },
      ],
    });
  return { text: esc(n.text), blocks };
}
