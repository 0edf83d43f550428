import { rmSync } from 'node:fs';
import { writeFileAtomic } from '../../src/fs/atomic.js';
import type { ChannelAdapter, ChannelFactory, PendingNotice } from '../../src/ports/channel.js';
import type { MotdChannel } from './schema.js';

const WIDTH = 72;

function box(lines: string[]): string {
  const rule = `+${'-'.repeat(WIDTH + 2)}+`;
  const body = lines.map((l) => `| ${l.length > WIDTH ? `${l.slice(0, WIDTH - 1)}…` : l.padEnd(WIDTH)} |`);
  return [rule, ...body, rule].join('\n');
}

/** The short boxed notice shown at login. */
export function motdText(p: PendingNotice): string {
  const lines =
    p.updateAvailable === false
      ? [
          `Newer NixOS release available on ${p.host}: ${p.releases.join(', ')}`,
          `  ${p.input}${p.branch ? ` (${p.branch})` : ''} is up to date at ${short(p.current.rev)} ${p.current.date ?? ''}`.trimEnd(),
        ]
      : [
          `NixOS update available on ${p.host}`,
          `  ${p.input}${p.branch ? ` (${p.branch})` : ''}: ${short(p.current.rev)} ${p.current.date ?? ''} -> ${short(p.available.rev)} ${p.available.date ?? ''}`.trimEnd(),
        ];
  if (p.reason) lines.push(...wrap(p.reason, WIDTH - 2).map((l) => `  ${l}`));
  if (p.updateAvailable !== false && p.releases.length)
    lines.push(`  newer release: ${p.releases.join(', ')}${p.release ? ` (later: ${p.release.next})` : ''}`);
  lines.push(`Test it (not persisted):  ${p.next}`, `Details: ${p.detailsFile}`);
  return `${box(lines)}\n`;
}

/** Words to lines of at most `width` characters (a longer word gets a line of its own). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function short(rev: string | undefined): string {
  return rev ? rev.slice(0, 10) : '?';
}

/** The motd channel: a file that login shows (pam_motd reads /etc/motd.d). */
export const motd: ChannelFactory<MotdChannel> = {
  type: 'motd',
  create(channel, ctx): ChannelAdapter {
    const file = ctx.config.paths.motd;
    return {
      name: channel.name ?? 'motd',
      type: 'motd',
      // A notice board only: events change nothing by themselves, the file mirrors what is pending.
      async reconcile(pending) {
        // Login shows it to every user (pam_motd reads the dir as the user logging in on some
        // systems): world-readable file and dir, writable only by root.
        if (pending) writeFileAtomic(file, motdText(pending), 0o644, 0o755);
        else rmSync(file, { force: true });
      },
    };
  },
};
