import { fstatSync, lstatSync, readdirSync, type Stats, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HvError } from '../errors.js';

/**
 * Which files hv trusts (SPEC "Files", permissions). hv runs as root and what it activates is
 * decided by files: the config, the state dir's records (`upgrade-test-result.json`,
 * `last-upgrade.json`, the journal, backups, operation records, …) and secrets. A file that another
 * user could have written must never decide anything, so before using one hv checks it:
 *
 * - **Trusted owners** are root and the user hv runs as (the same set when running as root; a
 *   sandbox with `allowNonRoot` trusts its own uid too, and root, who can write anything anyway).
 * - **No group or world write** on hv's dirs (state, log), anything directly in them, their parent
 *   dirs (a sticky dir such as /tmp is fine as a parent: others cannot rename our entry in it),
 *   the config file and secret files.
 * - **Symlinks** are judged by lstat: a link owned by another user is refused; a trusted link is
 *   followed and its target judged too.
 * - A secret readable by group or others is used, with a warning naming it.
 *
 * Every problem is one line naming the path, what is wrong and the command that fixes it; they are
 * raised together as one HvError('unsafe-path') (exit 2). The checks are lstat/stat calls only, so
 * `hv status` stays fast. Missing paths are fine (hv creates them with safe modes).
 */

/** One offending path: what it is, what is wrong, how to fix it. */
export interface TrustProblem {
  path: string;
  line: string;
}

const GROUP_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

function uid(): number {
  return process.geteuid?.() ?? process.getuid?.() ?? 0;
}

/** Root, and the user hv runs as. */
export function trustedOwner(owner: number): boolean {
  return owner === 0 || owner === uid();
}

function owners(): string {
  const me = uid();
  return me === 0 ? 'root' : `root or uid ${me}`;
}

function chownFix(path: string): string {
  const me = uid();
  return me === 0 ? `chown root:root ${q(path)}` : `chown ${me} ${q(path)}`;
}

function q(path: string): string {
  return /^[\w./@+:,-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

function mode(st: Stats): string {
  return `0${(st.mode & 0o7777).toString(8).padStart(3, '0')}`;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * Judge one stat result: owner and write bits. `allowSticky` accepts a group/world-writable dir
 * with the sticky bit (parents only).
 */
function judge(label: string, path: string, st: Stats, allowSticky = false): TrustProblem | null {
  const wrong: string[] = [];
  const fixes: string[] = [];
  if (!trustedOwner(st.uid)) {
    wrong.push(`owned by uid ${st.uid} (must be ${owners()})`);
    fixes.push(chownFix(path));
  }
  const writable = (st.mode & GROUP_OTHER_WRITE) !== 0 && !(allowSticky && st.mode & STICKY);
  if (writable) {
    wrong.push(`writable by group or others (mode ${mode(st)})`);
    fixes.push(`chmod go-w ${q(path)}`);
  }
  if (!wrong.length) return null;
  return { path, line: `${label}: ${wrong.join(', ')}; fix: ${fixes.join(' && ')}` };
}

/**
 * Check one path by lstat (and its target when it is a trusted symlink). A missing path (or a
 * dangling link's target) is no problem.
 */
export function inspect(what: string, path: string, allowSticky = false): TrustProblem[] {
  const l = lstatOrNull(path);
  if (!l) return [];
  if (!l.isSymbolicLink()) {
    const p = judge(`${what} ${path}`, path, l, allowSticky);
    return p ? [p] : [];
  }
  if (!trustedOwner(l.uid))
    return [
      {
        path,
        line: `${what} ${path}: a symlink owned by uid ${l.uid} (must be ${owners()}); fix: check where it points, then rm ${q(path)} (hv recreates what it needs)`,
      },
    ];
  let target: Stats;
  try {
    target = statSync(path);
  } catch {
    return [];
  }
  // chown and chmod follow the link, so the fix names the link.
  const p = judge(`${what} ${path} (a symlink; its target)`, path, target, allowSticky);
  return p ? [p] : [];
}

/** The parents of `dir`, nearest first, up to `/`. */
function parents(dir: string): string[] {
  const out: string[] = [];
  let d = dirname(dir);
  for (;;) {
    out.push(d);
    const up = dirname(d);
    if (up === d) return out;
    d = up;
  }
}

/**
 * One of hv's own dirs (state, log): its parents (another user able to rename it away could put
 * their own in its place), the dir itself, and every entry directly in it (an entry planted while
 * the dir was open, e.g. a symlink under a log name that root would append to).
 */
export function inspectOwnDir(what: string, dir: string): TrustProblem[] {
  const out: TrustProblem[] = [];
  for (const p of parents(dir)) out.push(...inspect('parent dir', p, true));
  const own = inspect(what, dir);
  out.push(...own);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) out.push(...inspect(`${what} entry`, join(dir, name)));
  return out;
}

/** Throw HvError('unsafe-path') listing every problem, one line each; nothing when the list is empty. */
export function refuseProblems(problems: TrustProblem[]): void {
  if (!problems.length) return;
  const seen = new Set<string>();
  const lines = problems.filter((p) => !seen.has(p.line) && seen.add(p.line)).map((p) => `  ${p.line}`);
  throw new HvError(
    'unsafe-path',
    `refusing to use files that another user could have written (nothing was changed):\n${lines.join('\n')}`,
    { paths: problems.map((p) => p.path) },
  );
}

/** The state and log dirs (with parents and direct entries): run before any command touches state. */
export function assertStateTrusted(stateDir: string, logDir: string): void {
  refuseProblems([...inspectOwnDir('state dir', stateDir), ...inspectOwnDir('log dir', logDir)]);
}

/**
 * Files or dirs whose content decides what hv activates or restores (test result, upgrade/rollback
 * records, journal, backups, operation records): refused unless trusted. Call right before reading;
 * `what` names them in the message ("gating file", "backup", …).
 */
export function assertTrusted(what: string, ...paths: string[]): void {
  refuseProblems(paths.flatMap((p) => inspect(what, p)));
}

/**
 * An open config or secret file: the opened file's owner and mode (fstat, so what is judged is
 * what is read), and the link itself when `path` is a symlink. Returns whether group or others
 * can read it (for the secret warning).
 */
export function assertOpenFileTrusted(what: string, path: string, fd: number): { readableByOthers: boolean } {
  const problems = inspectLinkOnly(what, path);
  const st = fstatSync(fd);
  const p = judge(`${what} ${path}`, path, st);
  if (p) problems.push(p);
  refuseProblems(problems);
  return { readableByOthers: (st.mode & 0o044) !== 0 };
}

function inspectLinkOnly(what: string, path: string): TrustProblem[] {
  const l = lstatOrNull(path);
  if (!l?.isSymbolicLink() || trustedOwner(l.uid)) return [];
  return [
    {
      path,
      line: `${what} ${path}: a symlink owned by uid ${l.uid} (must be ${owners()}); fix: check where it points, then replace it with a file owned by ${owners()}`,
    },
  ];
}

/**
 * Every secret file the config names: the value of each `…File` key anywhere in it (smtp
 * `passwordFile`, slack `botTokenFile`, discord `tokenFile`, and whatever a new adapter adds).
 */
export function secretPaths(config: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (/File$/.test(k) && typeof x === 'string') out.push(x);
        else walk(x);
      }
  };
  walk(config);
  return [...new Set(out)];
}

/**
 * The config's secret files, before anything runs: refused (one line each) when another user owns
 * one or group/others can write it; returns those group/others can read (used, with a warning).
 * A missing secret is left to the adapter that reads it (it reports "cannot read secret file").
 */
export function assertSecretsTrusted(config: unknown): string[] {
  const problems: TrustProblem[] = [];
  const readable: string[] = [];
  for (const path of secretPaths(config)) {
    const found = inspect('secret file', path);
    problems.push(...found);
    if (found.length) continue;
    try {
      if (statSync(path).mode & 0o044) readable.push(path);
    } catch {
      // missing: reported when read
    }
  }
  refuseProblems(problems);
  return readable;
}
