import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HvError } from '../errors.js';
import { guardDowngrade, refuseDowngrade } from './downgrade.js';
import { type FlakeLock, type LockedInput, lockedInput, readFlakeLock, sha256 } from './flake-lock.js';
import { type ReleaseChange, rewriteRelease } from './release-upgrade.js';
import { compareReleases, releaseName } from './releases.js';
import { createStaging, hashManifest, inputsManifest } from './staging.js';
import { currentGeneration, systemPath, versionOf } from './system.js';
import type { TestResult } from './test-result.js';
import { runningRelease, type TestDeps, type TestOptions, type TestRun } from './upgrade-test-run.js';

/** What the test starts from: the live lock and the running system. */
export interface TestStart {
  startedAt: string;
  liveLock: FlakeLock;
  oldNode: LockedInput;
  previousSystem: string;
  previousGeneration: number | undefined;
}

/** A planned `--release` change, and why it would be a downgrade (empty: it is not). */
export interface ReleasePlan {
  release: ReleaseChange | undefined;
  reasons: string[];
}

/** Step "start": read the live lock and the running system; refused when that cannot be told. */
export function readStart(deps: TestDeps, opts: TestOptions): TestStart {
  const { config, now, log } = deps;
  const { dir, input } = config.flake;
  const startedAt = now().toISOString();
  log.info('upgrade test started', { dir, input, host: config.host, by: opts.by });
  const liveLock = readFlakeLock(dir);
  const oldNode = lockedInput(liveLock, input);
  const previousSystem = systemPath(config.paths.currentSystem);
  const previousGeneration = currentGeneration(config.paths.profile);
  if (!previousSystem)
    throw new HvError(
      'refused',
      `refused: cannot tell the running system (${config.paths.currentSystem} does not resolve), so a failed test could not be reverted; check paths.currentSystem`,
    );
  return { startedAt, liveLock, oldNode, previousSystem, previousGeneration };
}

/**
 * Step "release": for `--release`, work out the new flake.nix before anything is copied, so that a
 * url hv cannot rewrite is refused at once; a lower release is refused here too (nothing recorded)
 * unless `--allow-downgrade`.
 */
export function planRelease(deps: TestDeps, opts: TestOptions, start: TestStart): ReleasePlan {
  const { config, log } = deps;
  const { dir, input } = config.flake;
  const reasons: string[] = [];
  let release: ReleaseChange | undefined;
  if (opts.release) {
    const file = join(dir, 'flake.nix');
    const live = readFileSync(file, 'utf8');
    const moved = rewriteRelease(live, file, input, opts.release);
    release = { ...moved.change, liveFlakeNixSha256: sha256(live) };
    log.info('release upgrade planned', { from: release.fromRef, to: release.toRef, line: release.line });
    const running = runningRelease(start.previousSystem);
    if (compareReleases(opts.release, moved.from) < 0)
      reasons.push(
        `release ${release.to} is lower than the tracked ${release.fromRef} (${input} in ${file})`,
      );
    if (running && compareReleases(opts.release, running) < 0)
      reasons.push(
        `release ${release.to} is lower than the running NixOS ${versionOf(start.previousSystem) ?? releaseName(running)}`,
      );
  }
  if (reasons.length && !opts.allowDowngrade) refuseDowngrade(reasons, log);
  return { release, reasons };
}

/**
 * Step "stage": copy the flake to a staging dir (with the rewritten flake.nix of a release
 * upgrade) and start the result, FAILED until the last step says otherwise. An allowed release
 * downgrade is recorded in it.
 */
export function stage(deps: TestDeps, opts: TestOptions, start: TestStart, plan: ReleasePlan): TestRun {
  const { config, now, paths, log, progress } = deps;
  const { dir, input } = config.flake;
  const { release } = plan;
  progress.step('copying the flake to a staging dir');
  const stagingDir = createStaging(dir, paths.staging, now());
  if (release) {
    // Same mode as the copy (cpSync kept it): only the content changes.
    writeFileSync(join(stagingDir, 'flake.nix'), release.flakeNix);
    progress.step(`moving ${input} to ${release.toRef} in the staging flake.nix`);
  }
  const stagingFiles = inputsManifest(stagingDir);
  const { startedAt, liveLock, oldNode, previousSystem, previousGeneration } = start;
  const r: TestResult = {
    status: 'failed',
    host: config.host,
    startedAt,
    finishedAt: startedAt,
    input,
    oldRev: oldNode.locked.rev,
    oldLastModified: oldNode.locked.lastModified,
    newRev: undefined,
    newLastModified: undefined,
    liveLockSha256: liveLock.sha256,
    testedLock: undefined,
    testedLockSha256: undefined,
    stagingInputsHash: hashManifest(stagingFiles),
    stagingFiles,
    stagingDir,
    toplevel: undefined,
    version: undefined,
    previousSystem,
    previousGeneration,
    gcRoot: undefined,
    checks: [],
    reverted: false,
    rebootRequired: false,
    rebootParts: [],
    downgradeAllowed: false,
    log: log.file,
    ...(release ? { release } : {}),
  };
  log.info('staging copy made', { stagingDir, inputsHash: r.stagingInputsHash });
  // Allowed (--allow-downgrade): the result records it.
  guardDowngrade(plan.reasons, opts, r, log);
  return {
    deps,
    opts,
    startedAt,
    stagingDir,
    previousSystem,
    previousGeneration,
    release,
    r,
    step: 'update',
  };
}
