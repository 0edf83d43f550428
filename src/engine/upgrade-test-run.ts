import { rmSync } from 'node:fs';
import { removeFiles } from '../state.js';
import type { OperationDeps } from './check.js';
import { type FailureKind, guidanceFor } from './guidance.js';
import type { ReleaseChange } from './release-upgrade.js';
import { type Release, releaseOfVersion } from './releases.js';
import { versionOf } from './system.js';
import { type TestResult, writeTestResult } from './test-result.js';

/** What an upgrade test runs with. */
export type TestDeps = OperationDeps;

export interface TestOptions {
  allowDowngrade: boolean;
  /** Who runs it (for the in-progress marker). */
  by: string;
  /** `--release`: move the tracked input to this release in the staging copy's flake.nix. */
  release?: Release;
}

/**
 * The context every step of one upgrade test receives: what it runs with, the facts fixed when it
 * started, and the result the steps fill in (written once, by `recordResult`).
 */
export interface TestRun {
  deps: TestDeps;
  opts: TestOptions;
  startedAt: string;
  stagingDir: string;
  /** The system to re-activate on failure (the test is refused when it cannot be told). */
  previousSystem: string;
  previousGeneration: number | undefined;
  release: ReleaseChange | undefined;
  r: TestResult;
  /** The step an unexpected error is recorded against; each step sets it when it starts. */
  step: string;
}

/** How a step failed: recorded as a FAILED result with guidance. */
export interface Failure {
  failedStep: string;
  kind: FailureKind;
  error: string;
  failedUnits?: string[];
}

export function isFailure(x: object): x is Failure {
  return 'failedStep' in x;
}

/** The release a system runs, from its `nixos-version`. */
export function runningRelease(system: string | undefined) {
  return releaseOfVersion(versionOf(system));
}

export const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

/**
 * The last step: record the outcome (PASSED, or FAILED with guidance), drop the GC root of a
 * failed build, write the result atomically, then remove the in-progress marker.
 */
export function recordResult(run: TestRun, outcome: Failure | 'passed'): TestResult {
  const { r } = run;
  const { now, paths, log } = run.deps;
  if (outcome === 'passed') r.status = 'passed';
  else {
    r.status = 'failed';
    r.failedStep = outcome.failedStep;
    r.failureKind = outcome.kind;
    r.error = outcome.error;
    r.guidance = guidanceFor(outcome.kind, {
      log: log.file,
      failedUnits: outcome.failedUnits,
      checks: r.checks.filter((c) => !c.ok).map((c) => c.name),
    });
  }
  r.finishedAt = now().toISOString();
  if (r.status === 'failed' && r.gcRoot) {
    rmSync(r.gcRoot, { force: true });
    r.gcRoot = undefined;
  }
  writeTestResult(paths, r);
  removeFiles(paths.testInProgress);
  log.info('upgrade test finished', { status: r.status, failedStep: r.failedStep, reverted: r.reverted });
  return r;
}
