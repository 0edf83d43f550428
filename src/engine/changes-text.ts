import type { ClosureDiff } from './closure-diff.js';
import { countsText, diffLines, diffSummary, highlightTexts } from './closure-diff-text.js';

/**
 * The closure diff as the messages an admin decides from carry it: a summary that fits a subject
 * line or a prompt (highlights first, never cut before the counts), and the section of the result
 * file. Built on closure-diff-text.ts.
 */

/** Where a diff was or was not computed (a TestResult, an UpgradeRecord). */
export interface WithChanges {
  changes?: ClosureDiff;
  changesError?: string;
}

/**
 * `diffSummary` in at most `max` characters: the closure delta goes first, then the highlights
 * past those that fit (`+N more highlights`); the counts always stay.
 */
export function fitSummary(d: ClosureDiff, watch: readonly string[], max: number): string {
  const full = diffSummary(d, watch);
  if (full.length <= max) return full;
  const counts = countsText(d);
  const hl = highlightTexts(d, watch);
  for (let n = hl.length; n >= 0; n--) {
    const more = hl.length - n;
    const head = [...hl.slice(0, n), ...(more ? [`+${more} more highlight${more === 1 ? '' : 's'}`] : [])];
    const text = `${head.length ? `${head.join(', ')}; ` : ''}${counts}`;
    if (text.length <= max || n === 0) return text;
  }
  return counts;
}

/** `Changes: <summary>`, or `Changes: unknown (<why>)`; undefined when nothing was ever computed. */
export function changesLine(x: WithChanges, watch: readonly string[], max = 600): string | undefined {
  if (x.changes) return `Changes: ${fitSummary(x.changes, watch, max)}`;
  if (x.changesError) return `Changes: unknown (${clip(oneLine(x.changesError), 300)})`;
  return undefined;
}

/** The full list (for a result file, an email body), indented under a `Changes:` heading. */
export function changesSection(x: WithChanges, watch: readonly string[]): string[] {
  if (x.changes) return ['Changes:', ...diffLines(x.changes, watch).map((l) => `  ${l}`)];
  if (x.changesError) return ['Changes:', `  unknown: ${oneLine(x.changesError)}`];
  return [];
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
