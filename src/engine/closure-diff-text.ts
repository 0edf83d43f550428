import type { ClosureDiff, Highlight, PackageChange } from './closure-diff.js';
import { watchedLabel } from './closure-diff.js';

/**
 * A closure diff in words, for every place an admin decides: a one-line summary (chat, subjects,
 * `hv status`, prompts) and the full list (result file, email body, details file, `hv diff`).
 * Highlights come first so that no cut for a platform's size limit can hide them.
 */

/** `9.0.1` / `9.0.1, 9.0.2`; a path without a version is `ε` and no version at all `∅`, as Nix shows them. */
export function versionsText(vs: readonly string[]): string {
  return vs.length ? vs.map((v) => v || 'ε').join(', ') : '∅';
}

/** 1536 → `1.5 KiB`; signed when asked (`+12.3 MiB`). */
export function bytesText(n: number, signed = false): string {
  const sign = signed ? (n > 0 ? '+' : n < 0 ? '-' : '±') : n < 0 ? '-' : '';
  let v = Math.abs(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${sign}${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function highlightText(h: Highlight, watch: readonly string[]): string {
  const label = watchedLabel(h.name, watch) ?? h.name;
  if (h.kind === 'added') return `${label} added (${versionsText(h.to)})`;
  if (h.kind === 'removed') return `${label} removed (${versionsText(h.from)})`;
  return `${label} ${versionsText(h.from)} → ${versionsText(h.to)}`;
}

/** `kernel 6.6.1 → 6.6.2`, `QEMU 9.0.1 → 9.1.0`, `zfs added (2.2.4)`: what matters, kernel first. */
export function highlightTexts(d: ClosureDiff, watch: readonly string[] = []): string[] {
  const out: string[] = [];
  if (d.kernel) out.push(`kernel ${d.kernel.from ?? '∅'} → ${d.kernel.to ?? '∅'}`);
  for (const h of d.highlights) out.push(highlightText(h, watch));
  return out;
}

/** `2 changed, 1 added, 1 removed, 14 rebuilt` (zero counts left out; `no package changes`). */
export function countsText(d: ClosureDiff): string {
  const parts = [
    [d.changed.length, 'changed'],
    [d.added.length, 'added'],
    [d.removed.length, 'removed'],
    [d.rebuilt.length, 'rebuilt'],
  ]
    .filter(([n]) => (n as number) > 0)
    .map(([n, w]) => `${n} ${w}`);
  return parts.length ? parts.join(', ') : 'no package changes';
}

/** `1.2 GiB → 1.3 GiB (+12.3 MiB)`. */
export function sizeText(d: ClosureDiff): string {
  return `${bytesText(d.from.size)} → ${bytesText(d.to.size)} (${bytesText(d.to.size - d.from.size, true)})`;
}

/**
 * The short form for subjects, chat and prompts: highlights, then counts, then the closure size,
 * e.g. `kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0; 3 changed, 1 added, 12 rebuilt; closure +4.0 MiB`.
 */
export function diffSummary(d: ClosureDiff, watch: readonly string[] = []): string {
  const hl = highlightTexts(d, watch);
  const delta = bytesText(d.to.size - d.from.size, true);
  return `${hl.length ? `${hl.join(', ')}; ` : ''}${countsText(d)}; closure ${delta}`;
}

function changeLine(c: PackageChange): string {
  const delta = Math.abs(c.sizeDelta) >= 1024 ? ` (${bytesText(c.sizeDelta, true)})` : '';
  if (!c.from.length) return `  ${c.name} ${versionsText(c.to)}${delta}`;
  if (!c.to.length) return `  ${c.name} ${versionsText(c.from)}${delta}`;
  return `  ${c.name} ${versionsText(c.from)} → ${versionsText(c.to)}${delta}`;
}

/** The full list, one package per line; rebuilt packages are counted, not listed. */
export function diffLines(d: ClosureDiff, watch: readonly string[] = []): string[] {
  const lines: string[] = [];
  const hl = highlightTexts(d, watch);
  if (hl.length) lines.push(`Highlights: ${hl.join(', ')}`);
  if (d.kernel) lines.push(`Kernel: ${d.kernel.from ?? '∅'} → ${d.kernel.to ?? '∅'}`);
  else if (d.to.kernel) lines.push(`Kernel: ${d.to.kernel} (unchanged)`);
  for (const [title, list] of [
    ['Changed', d.changed],
    ['Added', d.added],
    ['Removed', d.removed],
  ] as const) {
    if (!list.length) continue;
    lines.push(`${title} (${list.length}):`);
    for (const c of list) lines.push(changeLine(c));
  }
  if (d.rebuilt.length) lines.push(`Rebuilt at the same version: ${d.rebuilt.length}`);
  if (!d.changed.length && !d.added.length && !d.removed.length && !d.rebuilt.length)
    lines.push('No package changes.');
  lines.push(
    `Closure: ${d.from.paths} paths, ${bytesText(d.from.size)} → ${d.to.paths} paths, ${bytesText(d.to.size)} (${bytesText(d.to.size - d.from.size, true)})`,
  );
  return lines;
}
