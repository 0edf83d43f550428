import type { HvEvent } from '../events.js';

/**
 * Message templates shared by every channel: a subject, a plain-text body and an HTML body per
 * event, digests, and helpers to fit a message into a channel's size limit. No platform library
 * here: adapters (email, Slack, Discord, wall) format with these and send.
 */

type Data = Record<string, unknown>;

const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' ? String(v) : undefined;

function obj(v: unknown): Data {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Data) : {};
}

function revDate(v: unknown): string | undefined {
  const o = obj(v);
  const rev = str(o.rev);
  const date = str(o.date);
  if (!rev && !date) return undefined;
  return `${rev ?? '?'}${date ? ` (${date})` : ''}`;
}

/** `[hv01] NixOS update available: nixos-24.05 2024-09-03`: host and what happened. */
export function subject(event: HvEvent): string {
  return `[${event.host}] ${event.title}`;
}

/** The facts of an event as label/value pairs, in the order people read them. */
export function facts(event: HvEvent): [string, string][] {
  const d = event.data;
  const out: [string, string][] = [['Host', event.host]];
  const add = (label: string, v: unknown) => {
    const s = str(v);
    if (s) out.push([label, s]);
  };
  switch (event.type) {
    case 'update.available': {
      add('Input', d.input);
      add('Branch', d.branch);
      add('Installed', revDate(d.current));
      add('Available', revDate(d.available));
      add('Why', d.reason);
      const releases = Array.isArray(d.releases)
        ? d.releases.map((r) => str(obj(r).branch) ?? str(r)).filter(Boolean)
        : [];
      if (releases.length) out.push(['Newer release', releases.join(', ')]);
      break;
    }
    case 'release.available': {
      const releases = Array.isArray(d.releases)
        ? d.releases.map((r) => str(obj(r).branch) ?? str(r)).filter(Boolean)
        : [];
      if (releases.length) out.push(['Releases', releases.join(', ')]);
      add('Tracking', d.tracked);
      break;
    }
    default:
      // Other events: show their scalar facts (toplevel, generation, reason…) without guessing.
      for (const [k, v] of Object.entries(d)) {
        if (k === 'error' || k === 'output' || k === 'guidance') continue;
        if (k === 'changes' || k === 'changesList') continue;
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
          const s = String(v);
          if (s.length <= 200 && !s.includes('\n')) out.push([label(k), s]);
        }
      }
      // What an upgrade changes (highlights first), however long: the admin decides on it.
      add('Changes', d.changes);
  }
  out.push(['When', event.at]);
  return out;
}

function label(key: string): string {
  const words = key.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_.-]/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1).toLowerCase();
}

/** Long free text of an event (an error, build output), shown in full below the facts. */
function longText(event: HvEvent): string | undefined {
  const g = event.data.guidance;
  const guidance = Array.isArray(g) ? g.filter((x) => typeof x === 'string').join('\n') : str(g);
  const list = str(event.data.changesList);
  const parts = [
    str(event.data.error),
    str(event.data.output),
    guidance ? `What to do:\n${guidance}` : undefined,
    list ? `Changes:\n${list}` : undefined,
  ].filter(Boolean) as string[];
  return parts.length ? parts.join('\n\n') : undefined;
}

/** The plain-text form: title, facts, any error text, the next command and the details file. */
export function renderText(event: HvEvent): string {
  const f = facts(event);
  const width = Math.max(...f.map(([k]) => k.length)) + 1;
  const lines = [event.title, '', ...f.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`)];
  const long = longText(event);
  if (long) lines.push('', long);
  if (event.next) lines.push('', `Next: ${event.next}`);
  if (event.detailsFile) lines.push(`Details: ${event.detailsFile}`);
  return `${lines.join('\n')}\n`;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

function htmlBody(event: HvEvent, heading: 'h2' | 'h3'): string {
  const rows = facts(event)
    .map(
      ([k, v]) =>
        `<tr><th style="text-align:left;padding-right:1em">${escapeHtml(k)}</th><td><code>${escapeHtml(v)}</code></td></tr>`,
    )
    .join('\n');
  const parts = [`<${heading}>${escapeHtml(event.title)}</${heading}>`, `<table>\n${rows}\n</table>`];
  const long = longText(event);
  if (long) parts.push(`<pre>${escapeHtml(long)}</pre>`);
  if (event.next) parts.push(`<p>Next: <code>${escapeHtml(event.next)}</code></p>`);
  if (event.detailsFile) parts.push(`<p>Details: <code>${escapeHtml(event.detailsFile)}</code></p>`);
  return parts.join('\n');
}

function htmlPage(title: string, body: string): string {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body>\n${body}\n</body></html>\n`;
}

/** The HTML form (email): the same content as `renderText`, every value escaped. */
export function renderHtml(event: HvEvent): string {
  return htmlPage(subject(event), htmlBody(event, 'h2'));
}

/** What a digest covers, e.g. `{ kind: 'daily', label: '2024-09-03' }`. */
export interface DigestPeriod {
  kind: 'daily' | 'weekly' | 'monthly';
  label: string;
}

export function digestSubject(host: string, events: HvEvent[], period: DigestPeriod): string {
  const what = period.kind === 'daily' ? 'Daily' : period.kind === 'weekly' ? 'Weekly' : 'Monthly';
  const n = events.length;
  const only = n === 1 && events[0] ? `: ${events[0].title}` : `: ${n} notifications`;
  return `[${host}] ${what} digest ${period.label}${only}`;
}

/** Several events as one message: a list of titles, then each event in full. */
export function renderDigestText(host: string, events: HvEvent[], period: DigestPeriod): string {
  const head = [
    `${digestSubject(host, events, period).replace(/^\[[^\]]*\] /, '')} on ${host}`,
    '',
    ...events.map((e, i) => `${i + 1}. ${e.title} (${e.at})`),
  ];
  const bodies = events.map((e, i) => `--- ${i + 1}. ---\n${renderText(e)}`);
  return `${[...head, '', ...bodies].join('\n')}`;
}

export function renderDigestHtml(host: string, events: HvEvent[], period: DigestPeriod): string {
  const title = digestSubject(host, events, period);
  const list = events.map((e) => `<li>${escapeHtml(e.title)} <small>${escapeHtml(e.at)}</small></li>`);
  const body = [
    `<h2>${escapeHtml(title)}</h2>`,
    `<ol>\n${list.join('\n')}\n</ol>`,
    ...events.map((e) => `<hr>\n${htmlBody(e, 'h3')}`),
  ].join('\n');
  return htmlPage(title, body);
}

/**
 * Cut `text` to at most `limit` characters, ending with a pointer to the full details file when one
 * exists. Cuts at a line break when one is near, so a line is never half shown without a mark.
 */
export function truncate(text: string, limit: number, detailsFile?: string): string {
  if (text.length <= limit) return text;
  const note = `\n… (truncated${detailsFile ? `; full details: ${detailsFile}` : ''})`;
  if (note.length >= limit) return `${text.slice(0, Math.max(0, limit - 1))}…`;
  let cut = limit - note.length;
  const nl = text.lastIndexOf('\n', cut);
  if (nl > cut * 0.8) cut = nl;
  return `${text.slice(0, cut)}${note}`;
}

/**
 * Split `text` into pieces of at most `limit` characters, at line breaks where possible (then at
 * spaces, then anywhere), keeping order; joining the pieces with "\n" gives back every line.
 */
export function splitMessage(text: string, limit: number): string[] {
  if (limit < 1) throw new RangeError('limit must be at least 1');
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    let cut = rest.lastIndexOf('\n', limit);
    let skip = 1;
    if (cut <= 0) {
      cut = rest.lastIndexOf(' ', limit);
      if (cut <= 0) {
        cut = limit;
        skip = 0;
      }
    }
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut + skip);
  }
  if (rest.length > 0 || pieces.length === 0) pieces.push(rest);
  return pieces;
}
