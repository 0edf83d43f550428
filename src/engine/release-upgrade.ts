import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HV } from '../cli-name.js';
import { HvError } from '../errors.js';
import { sha256 } from './flake-lock.js';
import { type InputAttr, scanFlakeNix } from './flake-nix.js';
import { refOfUrl, refOnRelease } from './flake-url.js';
import { compareReleases, type Release, releaseName, releaseOfRef } from './releases.js';
import { inputsManifest, manifestDiff } from './staging.js';

/**
 * A release upgrade (`hv upgrade-test --release YY.MM`) as the test recorded it. `system-upgrade`
 * installs `flakeNix` together with the tested lock; nothing else of the flake dir changes.
 */
export interface ReleaseChange {
  /** The release the input followed (`24.11`) and the one it follows in the tested flake.nix. */
  from: string;
  to: string;
  fromRef: string;
  toRef: string;
  /** The staging flake.nix, verbatim: what system-upgrade installs. */
  flakeNix: string;
  flakeNixSha256: string;
  /** sha256 of the live flake.nix the test started from; apply refuses if it changed since. */
  liveFlakeNixSha256: string;
  /** The line of flake.nix that changed, and the url (or ref) before and after. */
  line: number;
  value: { from: string; to: string };
}

/** `24.11` or `nixos-24.11` → the release; anything else is a usage error naming what is allowed. */
export const RELEASE_ARG = /^(?:nixos-)?(\d{2})\.(0[1-9]|1[0-2])$/;

export function releaseOfArg(arg: string): Release {
  const m = RELEASE_ARG.exec(arg);
  if (!m)
    throw new HvError(
      'usage',
      `--release ${arg}: must be a NixOS release as YY.MM or nixos-YY.MM, e.g. 24.11 or nixos-24.11`,
    );
  return { year: Number(m[1]), month: Number(m[2]) };
}

/** The exact command that tests a move to `branch` (`nixos-25.05` → `hv upgrade-test --release 25.05`). */
export function releaseCommand(branch: string): string {
  const r = releaseOfRef(branch);
  return `${HV} upgrade-test --release ${r ? releaseName(r) : branch}`;
}

function refuse(file: string, why: string, fix: string): never {
  throw new HvError(
    'refused',
    `refused (gate "flake.nix rewritable"): ${why}. Nothing was changed or activated. Edit ${file} by hand: ${fix}; then run "${HV} upgrade-test" (it locks and tests the new branch; "${HV} system-upgrade" then installs the lock).`,
    { gate: 'flake.nix rewritable', file },
  );
}

const samePath = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Move the tracked input of a flake.nix text to release `to`: only the branch inside its url (or
 * its `ref` attribute) changes; every other byte stays. Throws HvError 'refused' (exit 3: the
 * command and config are right, but hv will not make an edit it cannot make unambiguously) when
 * the url is not found, is computed, names no release branch, or its text also appears elsewhere;
 * 'usage' (exit 2) when the input already follows that release.
 */
export function rewriteRelease(
  text: string,
  file: string,
  input: string,
  to: Release,
): { text: string; from: Release; change: Omit<ReleaseChange, 'liveFlakeNixSha256'> } {
  const target = releaseName(to);
  const scan = scanFlakeNix(text);
  const fixUrl = `set the branch of inputs.${input}.url to nixos-${target}`;
  if (!scan.topLevelSet)
    refuse(file, `${file} is not a plain attribute set ({ inputs = …; outputs = …; })`, fixUrl);
  const mine = (a: InputAttr, leaf: string) => samePath(a.path, ['inputs', input, leaf]);
  // Anything that could define the input without hv seeing its literal: computed.
  const computed = scan.attrs.filter(
    (a) =>
      !a.literal &&
      (a.path.includes('?') ||
        samePath(a.path, ['inputs']) ||
        samePath(a.path, ['inputs', input]) ||
        mine(a, 'url') ||
        mine(a, 'ref')),
  );
  if (computed.length)
    refuse(
      file,
      `the url of input "${input}" in ${file} is computed (line ${computed.map((a) => a.line).join(', ')}), not a plain string`,
      fixUrl,
    );
  const urls = scan.attrs.filter((a) => mine(a, 'url'));
  const refs = scan.attrs.filter((a) => mine(a, 'ref'));
  const attr = refs[0] ?? urls[0];
  if (urls.length + refs.length === 0 || !attr?.literal)
    refuse(
      file,
      `${file} sets no url for input "${input}" (it may come from the flake registry)`,
      `add inputs.${input}.url = "github:NixOS/nixpkgs/nixos-${target}";`,
    );
  if (urls.length > 1 || refs.length > 1)
    refuse(file, `input "${input}" has more than one url in ${file}`, fixUrl);
  const lit = attr.literal;
  if (lit.content.includes('\\'))
    refuse(file, `the url of input "${input}" (${file} line ${attr.line}) uses escapes`, fixUrl);
  const others = scan.literals.filter(
    (l) => l.content === lit.content && l.contentStart !== lit.contentStart,
  );
  if (others.length) {
    const alsoInputs = scan.attrs
      .filter((a) => a !== attr && a.literal?.content === lit.content && a.path[0] === 'inputs')
      .map((a) => a.path[1]);
    refuse(
      file,
      `the url "${lit.content}" of input "${input}" (${file} line ${attr.line}) also appears on line ${others.map((o) => o.line).join(', ')}${alsoInputs.length ? ` (input ${alsoInputs.join(', ')})` : ''}; hv will not guess whether those should move too`,
      `set the branch to nixos-${target} where you mean it to change`,
    );
  }
  let loc: { ref: string; start: number; end: number } | undefined;
  if (attr === refs[0]) loc = { ref: lit.content, start: 0, end: lit.content.length };
  else loc = refOfUrl(lit.content);
  if (!loc)
    refuse(
      file,
      `the url "${lit.content}" of input "${input}" (${file} line ${attr.line}) names no branch`,
      fixUrl,
    );
  const from = releaseOfRef(loc.ref);
  if (!from)
    refuse(
      file,
      `input "${input}" follows "${loc.ref}" (${file} line ${attr.line}), not a release branch such as nixos-24.11; --release moves between releases`,
      fixUrl,
    );
  if (compareReleases(from, to) === 0)
    throw new HvError(
      'usage',
      `--release ${target}: input "${input}" already follows ${loc.ref} (${file} line ${attr.line}); that is not a release upgrade. For updates within the release run "${HV} upgrade-test" without --release.`,
    );
  const toRef = refOnRelease(loc.ref, to);
  const value = lit.content.slice(0, loc.start) + toRef + lit.content.slice(loc.end);
  const out = text.slice(0, lit.contentStart) + value + text.slice(lit.contentEnd);
  return {
    text: out,
    from,
    change: {
      from: releaseName(from),
      to: target,
      fromRef: loc.ref,
      toRef,
      flakeNix: out,
      flakeNixSha256: sha256(out),
      line: attr.line,
      value: { from: lit.content, to: value },
    },
  };
}

/**
 * What changed in the flake dir since a test, for the apply gate. A release test changed flake.nix
 * in its staging copy on purpose: there, flake.nix is compared with the live one the test started
 * from (so an edit since the test is still caught), the rest with the staging copy as usual.
 */
export function flakeDirChanges(
  dir: string,
  tested: Record<string, string>,
  release: ReleaseChange | undefined,
): string[] {
  const live = inputsManifest(dir);
  if (!release) return manifestDiff(tested, live);
  const { 'flake.nix': _liveNix, ...liveRest } = live;
  const { 'flake.nix': _testedNix, ...testedRest } = tested;
  const changed = manifestDiff(testedRest, liveRest);
  let text: string | null = null;
  try {
    text = readFileSync(join(dir, 'flake.nix'), 'utf8');
  } catch {
    text = null;
  }
  if (text === null || sha256(text) !== release.liveFlakeNixSha256) changed.push('flake.nix');
  return changed.sort();
}

/** The recorded flake.nix is the one the test built (its digest is in the staging manifest). */
export function testedFlakeNixIntact(tested: Record<string, string>, release: ReleaseChange): boolean {
  const digest = sha256(release.flakeNix);
  return digest === release.flakeNixSha256 && (tested['flake.nix'] ?? '').endsWith(`:${digest}`);
}
