import type { ConfirmationPrompt } from '../../src/bus/types.js';
import type { HvEvent } from '../../src/events.js';
import { facts, splitMessage } from '../../src/notify/templates.js';
import type { CommandResult } from '../../src/ports/command.js';

/** Discord's message limits (https://discord.com/developers/docs/resources/message). */
export const LIMITS = {
  content: 2000,
  embeds: 10,
  embedTotal: 6000,
  title: 256,
  description: 4096,
  fieldValue: 1024,
  footer: 2048,
  customId: 100,
} as const;

/** An embed as the REST API takes it (only the parts used here). */
export interface Embed {
  title?: string;
  description?: string;
  color?: number;
  footer?: { text: string };
  timestamp?: string;
}

/** A message body for POST /channels/:id/messages or a webhook edit. */
export interface MessageBody {
  content?: string;
  embeds?: Embed[];
  components?: unknown[];
  flags?: number;
  nonce?: string;
  enforce_nonce?: boolean;
  allowed_mentions?: { parse: string[]; users?: string[] };
}

export const EPHEMERAL = 1 << 6;
const COLOR = { ok: 0x2e7d32, bad: 0xc62828, warn: 0xf9a825, info: 0x1565c0, busy: 0x757575 };

const GOOD = new Set(['ok', 'up-to-date', 'passed', 'applied', 'rolled-back']);
const BAD = new Set(['failed', 'error']);

function colorFor(status: string): number {
  if (GOOD.has(status)) return COLOR.ok;
  if (BAD.has(status)) return COLOR.bad;
  if (status === 'update-available' || status === 'refused') return COLOR.warn;
  return COLOR.busy;
}

const EVENT_COLOR: Record<string, number> = {
  'update.available': COLOR.info,
  'release.available': COLOR.info,
  'check.failed': COLOR.bad,
  'test.passed': COLOR.ok,
  'test.failed': COLOR.bad,
  'upgrade.applied': COLOR.ok,
  'upgrade.failed': COLOR.bad,
  'rollback.done': COLOR.warn,
};

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
const size = (e: Embed) =>
  (e.title?.length ?? 0) + (e.description?.length ?? 0) + (e.footer?.text.length ?? 0);

/**
 * Pack a long text into embeds and messages within Discord's limits: descriptions of at most 4096
 * characters cut at line breaks, at most 10 embeds and 6000 characters per message. The first
 * embed carries the title, the last the footer; nothing is dropped.
 */
export function packEmbeds(
  title: string,
  text: string,
  opts: { color?: number; footer?: string; timestamp?: string } = {},
): Embed[][] {
  const head = clip(title, LIMITS.title);
  const footer = opts.footer ? clip(opts.footer, LIMITS.footer) : undefined;
  // Leave room so that title + description + footer of one embed always fits a message.
  const room = LIMITS.description;
  const pieces = splitMessage(text.length ? text : ' ', room);
  const embeds: Embed[] = pieces.map((description, i) => ({
    ...(i === 0 ? { title: head } : {}),
    description,
    ...(opts.color !== undefined ? { color: opts.color } : {}),
  }));
  const last = embeds[embeds.length - 1];
  if (last && footer) {
    last.footer = { text: footer };
    if (opts.timestamp) last.timestamp = opts.timestamp;
  }
  const messages: Embed[][] = [];
  let current: Embed[] = [];
  let total = 0;
  for (const e of embeds) {
    if (current.length && (current.length === LIMITS.embeds || total + size(e) > LIMITS.embedTotal)) {
      messages.push(current);
      current = [];
      total = 0;
    }
    current.push(e);
    total += size(e);
  }
  if (current.length) messages.push(current);
  // A continuation message says what it continues.
  messages.forEach((m, i) => {
    const first = m[0];
    if (i > 0 && first && !first.title) {
      const t = clip(`${head} (continued ${i + 1}/${messages.length})`, LIMITS.title);
      if (size(first) + t.length > LIMITS.embedTotal) return;
      first.title = t;
    }
  });
  return messages;
}

/** The text of a notification: facts, any error text, next step, details file. */
export function eventText(event: HvEvent): string {
  const lines = facts(event).map(([k, v]) => `**${k}:** ${v}`);
  const long = [event.data.error, event.data.output].filter((v) => typeof v === 'string' && v.length);
  if (long.length) lines.push('', ...(long as string[]));
  if (event.next) lines.push('', `Next: \`${event.next}\``);
  if (event.detailsFile) lines.push(`Details: \`${event.detailsFile}\``);
  return lines.join('\n');
}

/** One or more message bodies for a notification. */
export function eventMessages(event: HvEvent): MessageBody[] {
  return packEmbeds(event.title, eventText(event), {
    color: EVENT_COLOR[event.type] ?? COLOR.info,
    footer: `hv · ${event.host} · ${event.type}`,
    timestamp: event.at,
  }).map((embeds) => ({ embeds, allowed_mentions: { parse: [] } }));
}

const STATUS_LABEL: Record<string, string> = {
  passed: 'PASSED',
  failed: 'FAILED',
  applied: 'APPLIED',
  'rolled-back': 'ROLLED BACK',
  refused: 'REFUSED',
  busy: 'BUSY',
  error: 'ERROR',
  'up-to-date': 'up to date',
  'update-available': 'update available',
  ok: 'done',
};

/** The final message of a command (one message; a very long text is cut, never rejected). */
export function resultMessage(command: string, host: string, result: CommandResult): MessageBody {
  const label = STATUS_LABEL[result.status] ?? result.status;
  const [first = []] = packEmbeds(`hv ${command} on ${host}: ${label}`, result.message, {
    color: colorFor(result.status),
    footer: `exit ${result.exitCode}`,
  });
  return { content: '', embeds: first, components: [], allowed_mentions: { parse: [] } };
}

export interface ProgressLine {
  step: string;
  detail?: string;
  at: number;
}

/** A running command: the steps so far, the current one last, with elapsed time. */
export function progressMessage(
  command: string,
  host: string,
  steps: ProgressLine[],
  now: number,
  /** Who asked or confirmed, e.g. "Confirmed by <@123>." */
  byline?: string,
): MessageBody {
  const start = steps[0]?.at ?? now;
  const shown = steps.slice(-15);
  const lines = shown.map((s, i) => {
    const current = i === shown.length - 1;
    return `${current ? '⏳' : '✅'} ${s.step}${s.detail ? ` — ${clip(s.detail, 300)}` : ''}`;
  });
  if (steps.length > shown.length) lines.unshift(`… ${steps.length - shown.length} earlier steps`);
  if (byline) lines.unshift(byline, '');
  const elapsed = Math.round((now - start) / 1000);
  return {
    content: '',
    embeds: [
      {
        title: clip(`hv ${command} on ${host}: running`, LIMITS.title),
        description: clip(lines.join('\n'), LIMITS.description),
        color: COLOR.info,
        footer: { text: `elapsed ${elapsed}s` },
      },
    ],
    components: [],
    allowed_mentions: { parse: [] },
  };
}

export const CONFIRM_PREFIX = 'hv:confirm:';
export const CANCEL_PREFIX = 'hv:cancel:';
export const KEEP_PREFIX = 'hv:keep:';

/**
 * A confirmation window (dead-man revert): until when, what confirms it, and a Keep button
 * (`hv:keep:<token>`) when a human may confirm.
 */
export function windowMessage(text: string, deadline: string, token?: string): MessageBody {
  const at = Math.floor(Date.parse(deadline) / 1000);
  return noteMessage(
    'Confirmation window open',
    Number.isFinite(at)
      ? `${text}
Ends <t:${at}:R>.`
      : text,
    token
      ? [{ type: 1, components: [{ type: 2, style: 3, label: 'Keep', custom_id: `${KEEP_PREFIX}${token}` }] }]
      : [],
  );
}

/**
 * A confirmation with Confirm / Cancel buttons; the custom_id (`hv:confirm:<command>:<token>`, at
 * most 100 characters) carries the bus token, so a click works after a daemon restart too.
 */
export function promptMessage(prompt: ConfirmationPrompt, note?: string): MessageBody {
  const expires = Math.floor(Date.parse(prompt.expiresAt) / 1000);
  const lines = [prompt.text, ''];
  if (Number.isFinite(expires)) lines.push(`Expires <t:${expires}:R>.`);
  if (prompt.approvalsNeeded > 1) lines.push(`Needs ${prompt.approvalsNeeded} different admins to confirm.`);
  if (note) lines.push(note);
  return {
    content: '',
    embeds: [
      {
        title: clip(`Confirm: hv ${[prompt.command, ...prompt.argv].join(' ')}`, LIMITS.title),
        description: clip(lines.join('\n'), LIMITS.description),
        color: COLOR.warn,
      },
    ],
    components: [
      {
        type: 1,
        components: [
          {
            type: 2,
            style: 4,
            label: 'Confirm',
            custom_id: `${CONFIRM_PREFIX}${prompt.command}:${prompt.token}`,
          },
          {
            type: 2,
            style: 2,
            label: 'Cancel',
            custom_id: `${CANCEL_PREFIX}${prompt.command}:${prompt.token}`,
          },
        ],
      },
    ],
    allowed_mentions: { parse: [] },
  };
}

/** A plain status line on the request's message (accepted, cancelled, waiting for approvals). */
export function noteMessage(title: string, text: string, components: unknown[] = []): MessageBody {
  return {
    content: '',
    embeds: [
      {
        title: clip(title, LIMITS.title),
        description: clip(text || ' ', LIMITS.description),
        color: COLOR.busy,
      },
    ],
    components,
    allowed_mentions: { parse: [] },
  };
}

/** A short ephemeral refusal, shown only to the person who asked or clicked. */
export function refusalMessage(reason: string): MessageBody {
  return {
    content: clip(`⛔ ${reason}`, LIMITS.content),
    flags: EPHEMERAL,
    allowed_mentions: { parse: [] },
  };
}
