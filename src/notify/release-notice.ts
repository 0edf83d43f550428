import { HV } from '../cli-name.js';
import type { CheckResult } from '../engine/check.js';
import { releaseCommand } from '../engine/release-upgrade.js';

/**
 * What the notices say about a newer NixOS release: the branch to move to and the exact command
 * that tests the move. The next release is named (one release at a time: option renames and
 * removals are announced for one release), the others are listed.
 */
export interface ReleaseNotice {
  branch: string;
  /** `hv upgrade-test --release 25.05`. */
  next: string;
  /** Every newer release branch, oldest first. */
  all: string[];
}

export function releaseNotice(r: CheckResult): ReleaseNotice | undefined {
  const first = r.releases[0];
  if (!first) return undefined;
  return { branch: first.branch, next: releaseCommand(first.branch), all: r.releases.map((x) => x.branch) };
}

/** `<state>/update-available` when only a newer release is pending (the tracked branch is up to date). */
export function releaseDetailsText(r: CheckResult, n: ReleaseNotice): string {
  return [
    `Newer NixOS release available for ${r.host}: ${n.all.join(', ')}`,
    '',
    `Input:      ${r.input} (${r.source})`,
    `Branch:     ${r.branch ?? '(default)'} (up to date at ${r.current.rev ?? '?'}, ${r.current.date ?? 'date unknown'})`,
    `Next release: ${n.branch}`,
    `Checked:    ${r.checkedAt}`,
    '',
    'Next steps:',
    `  ${n.next}    move ${r.input} to ${n.branch} in a staging copy, build and activate it`,
    '                                       without persisting; reverts on failure',
    `  ${HV} system-upgrade    then install exactly what was tested (flake.nix and flake.lock)`,
    '',
    'system.stateVersion stays as it is: it records the release of the first install (for',
    'stateful data formats), and changing it is not part of an upgrade. Read the release notes',
    `of ${n.branch} for the incompatibilities first.`,
    '',
  ].join('\n');
}
