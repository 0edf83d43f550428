import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import type { HvEvent } from '../events.js';
import { writeFileAtomic, writeJsonAtomic } from '../fs/atomic.js';
import { assertTrusted } from '../fs/trust.js';
import { makeEvent } from '../notify/events.js';
import type { ProcessIdentity } from '../process-identity.js';
import type { StatePaths } from '../state.js';
import { readRecord } from '../state.js';
import { changesLine, changesSection, fitSummary } from './changes-text.js';
import type { ClosureDiff } from './closure-diff.js';
import { diffLines } from './closure-diff-text.js';
import { type Downgrade, downgradeLine } from './downgrade.js';
import type { FailureKind } from './guidance.js';
import { TestResultRecord } from './records.js';
import type { ReleaseChange } from './release-upgrade.js';

/** One health or activation check, with what the tool printed. */
export interface CheckOutcome {
  name: string;
  ok: boolean;
  output: string;
}

/** `<state>/upgrade-test-result.json`: what was tested, how, and whether it passed. */
export interface TestResult {
  status: 'passed' | 'failed';
  host: string;
  startedAt: string;
  finishedAt: string;
  input: string;
  oldRev: string | undefined;
  oldLastModified: number | undefined;
  newRev: string | undefined;
  newLastModified: number | undefined;
  /** sha256 of the live flake.lock when the test started. */
  liveLockSha256: string;
  /** The staging flake.lock, verbatim: system-upgrade installs exactly this. */
  testedLock: string | undefined;
  testedLockSha256: string | undefined;
  /** inputsHash() of the staging flake dir (everything but flake.lock). */
  stagingInputsHash: string;
  /** Per-file digests behind stagingInputsHash, so a refusal can name what changed. */
  stagingFiles: Record<string, string>;
  stagingDir: string;
  /** The nixosConfigurations.<name> that was built. */
  configuration?: string;
  toplevel: string | undefined;
  version: string | undefined;
  previousSystem: string | undefined;
  previousGeneration: number | undefined;
  gcRoot: string | undefined;
  checks: CheckOutcome[];
  reverted: boolean;
  rebootRequired: boolean;
  rebootParts: string[];
  downgradeAllowed: boolean;
  /** Set when `--allow-downgrade` let a downgrade through: what it goes from and to. */
  downgrade?: Downgrade;
  /** `--release`: the tracked input moved to another release in the staging flake.nix. */
  release?: ReleaseChange;
  failedStep?: string;
  failureKind?: FailureKind;
  reason?: string;
  error?: string;
  guidance?: string;
  log: string;
  /** What the built system changes against the one running when the test started. */
  changes?: ClosureDiff;
  /** Why `changes` could not be computed (the test went on without it). */
  changesError?: string;
  /** A PASSED result that may no longer be applied: the system was rolled back or switched since. */
  invalidated?: { at: string; by: string; reason: string };
  /** apply.confirm: what confirmed the test activation (it stays active until the next reboot or switch). */
  confirmedBy?: string;
}

/**
 * Written before activation, removed at the end: its presence after a crash means "interrupted".
 * Names the test's process by PID, boot id and start time (see process-identity.ts).
 */
export interface InProgress extends ProcessIdentity {
  startedAt: string;
  by: string;
  toplevel: string;
  previousSystem: string | undefined;
  previousGeneration: number | undefined;
  /** What the test had recorded when it wrote the marker (complete when hv wrote it). */
  result: Partial<TestResult>;
}

/** The last result; HvError('unsafe-path') when another user could have written it. */
export function readTestResult(paths: StatePaths): TestResult | null {
  assertTrusted('gating file', paths.testJson);
  return readRecord<TestResult>(paths.testJson, TestResultRecord, 'the upgrade test result');
}

/**
 * SPEC: a rollback, or any switch hv did not test, invalidates the last PASSED result. The result
 * stays on disk (what was tested is still worth reading) but no longer approves an upgrade.
 */
export function invalidateTestResult(
  paths: StatePaths,
  why: { at: string; by: string; reason: string },
): boolean {
  const r = readTestResult(paths);
  if (!r || r.status !== 'passed' || r.invalidated) return false;
  writeTestResult(paths, { ...r, invalidated: why });
  return true;
}

/** The human result file: first line `Upgrade Test: PASSED|FAILED`, then details. */
export function resultText(r: TestResult): string {
  const lines = [
    `Upgrade Test: ${r.status === 'passed' ? 'PASSED' : 'FAILED'}`,
    '',
    `Host:             ${r.host}`,
    `Started:          ${r.startedAt}`,
    `Finished:         ${r.finishedAt}`,
    `Input:            ${r.input} ${r.oldRev ?? '?'} -> ${r.newRev ?? '?'}`,
    `Tested system:    ${r.toplevel ?? '(not built)'}${r.version ? ` (${r.version})` : ''}`,
    `Previous system:  ${r.previousSystem ?? '?'} (generation ${r.previousGeneration ?? '?'})`,
  ];
  if (r.release)
    lines.push(
      `Release:          ${r.release.from} -> ${r.release.to} (flake.nix line ${r.release.line}: ${r.release.fromRef} -> ${r.release.toRef}; system.stateVersion unchanged)`,
    );
  if (r.downgrade)
    lines.push(
      `${downgradeLine(r.downgrade, r.input)}, allowed with --allow-downgrade`,
      ...r.downgrade.reasons.map((why) => `  ${why}`),
    );
  else if (r.downgradeAllowed) lines.push('Downgrade:        allowed with --allow-downgrade');
  const changes = changesSection(r, []);
  if (changes.length) lines.push('', ...changes);
  if (r.checks.length) {
    lines.push('', 'Checks:');
    for (const c of r.checks) {
      lines.push(`  [${c.ok ? ' ok ' : 'FAIL'}] ${c.name}`);
      if (c.output.trim())
        lines.push(
          ...c.output
            .trim()
            .split('\n')
            .map((l) => `         ${l}`),
        );
    }
  }
  if (r.status === 'failed') {
    lines.push(
      '',
      `Failed step:      ${r.failedStep ?? '?'}${r.reason ? ` (${r.reason})` : ''}`,
      `Reverted:         ${r.reverted ? 'yes, the previous system is active again' : 'no (nothing was activated, or see error)'}`,
      '',
      'Error:',
      ...(r.error ?? '')
        .trim()
        .split('\n')
        .map((l) => `  ${l}`),
      '',
      'What to do:',
      `  ${r.guidance ?? ''}`,
    );
  } else if (r.invalidated) {
    lines.push(
      '',
      `Invalidated:      ${r.invalidated.reason} (${r.invalidated.at}, by ${r.invalidated.by})`,
      `Next: ${HV} upgrade-test   (this result no longer approves ${HV} system-upgrade)`,
    );
  } else {
    lines.push(
      '',
      `Next: ${HV} system-upgrade   (applies exactly this system permanently${r.release ? '; installs the tested flake.nix and flake.lock' : ''})`,
    );
  }
  if (r.rebootRequired)
    lines.push(
      `Reboot:           the new ${r.rebootParts.join(', ') || 'boot configuration'} takes effect after "${HV} system-upgrade" and a reboot (a reboot now drops this test activation)`,
    );
  lines.push(`Log:              ${r.log}`, '');
  return lines.join('\n');
}

export function writeTestResult(paths: StatePaths, r: TestResult): void {
  writeJsonAtomic(paths.testJson, r);
  writeFileAtomic(paths.testText, resultText(r));
}

/** test.passed / test.failed for a result. */
export function testEvent(config: Config, r: TestResult, paths: StatePaths, now: Date): HvEvent {
  const passed = r.status === 'passed';
  const watch = config.test.watch;
  // Subjects and chat titles carry the short form; the email body and the details file the list.
  const short = passed ? changesLine(r, watch, 300) : undefined;
  return makeEvent(
    passed ? 'test.passed' : 'test.failed',
    {
      host: config.host,
      key: `${r.toplevel ?? r.newRev ?? '?'}@${r.startedAt}`,
      title: passed
        ? `Upgrade test PASSED on ${config.host}: ${r.downgrade ? downgradeLine(r.downgrade, r.input) : (r.version ?? r.toplevel)}${r.release ? ` (release ${r.release.from} -> ${r.release.to})` : ''}${short ? ` — ${short}` : ''}`
        : `Upgrade test FAILED on ${config.host} at ${r.failedStep ?? '?'}${r.reason ? ` (${r.reason})` : ''}${r.reverted ? '; previous system re-activated' : ''}`,
      data: {
        status: r.status,
        input: r.input,
        oldRev: r.oldRev,
        newRev: r.newRev,
        toplevel: r.toplevel,
        version: r.version,
        failedStep: r.failedStep,
        reason: r.reason,
        error: r.error,
        guidance: r.guidance,
        reverted: r.reverted,
        rebootRequired: r.rebootRequired,
        ...(r.downgrade ? { downgrade: downgradeLine(r.downgrade, r.input) } : {}),
        ...(r.release ? { release: `${r.release.fromRef} -> ${r.release.toRef}` } : {}),
        ...(r.changes
          ? {
              changes: fitSummary(r.changes, watch, 1000),
              changesList: diffLines(r.changes, watch).join('\n'),
            }
          : r.changesError
            ? { changes: `unknown (${r.changesError})` }
            : {}),
      },
      next: passed ? `${HV} system-upgrade` : `${HV} upgrade-test`,
      detailsFile: paths.testText,
    },
    now,
  );
}

/** The result without the (long) lock text, for `--json` and chat. */
export function resultSummary(r: TestResult): Record<string, unknown> {
  const { testedLock: _lock, stagingFiles: _files, ...rest } = r;
  return rest;
}
