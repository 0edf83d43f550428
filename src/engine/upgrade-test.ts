import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { errorMessage, HvError, isHvError } from '../errors.js';
import { writeJsonAtomic } from '../fs/atomic.js';
import type { OpLog } from '../log.js';
import type { Progress } from '../ports/command.js';
import type { Runner } from '../proc.js';
import { selfIdentity } from '../process-identity.js';
import type { StatePaths } from '../state.js';
import { removeFiles } from '../state.js';
import { type Activation, describeExit, switchTo } from './activation.js';
import { resolveConfiguration } from './configurations.js';
import { guardDowngrade, markDowngrade, refuseDowngrade } from './downgrade.js';
import { lockedInput, readFlakeLock, sha256 } from './flake-lock.js';
import { classifyActivation, classifyBuild, type FailureKind, guidanceFor } from './guidance.js';
import { failedUnits, healthBaseline, runHealthChecks } from './health.js';
import { addGcRoot, buildArgv, lastLines, nixVersion, parseBuildOutput, updateInputArgv } from './nix.js';
import { type ReleaseChange, rewriteRelease } from './release-upgrade.js';
import { compareReleases, type Release, releaseName, releaseOfRef, releaseOfVersion } from './releases.js';
import { createStaging, hashManifest, inputsManifest } from './staging.js';
import { currentGeneration, rebootParts, systemPath, versionOf } from './system.js';
import { type InProgress, type TestResult, writeTestResult } from './test-result.js';

/** Name of the GC root that keeps the last tested system alive until it is applied. */
export const TESTED_ROOT = 'tested-system';

export interface TestDeps {
  config: Config;
  runner: Runner;
  now: () => Date;
  paths: StatePaths;
  log: OpLog;
  progress: Progress;
}

export interface TestOptions {
  allowDowngrade: boolean;
  /** Who runs it (for the in-progress marker). */
  by: string;
  /** `--release`: move the tracked input to this release in the staging copy's flake.nix. */
  release?: Release;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

/** The release a system runs, from its `nixos-version`. */
function runningRelease(system: string | undefined) {
  return releaseOfVersion(versionOf(system));
}

/**
 * Build the updated system from a staging copy, activate it with `switch-to-configuration test`,
 * health-check it and re-activate the previous system on any failure. Writes the result files and
 * returns the result; throws HvError('refused') for a downgrade (nothing activated). The live
 * flake dir is only read.
 */
export async function runUpgradeTest(deps: TestDeps, opts: TestOptions): Promise<TestResult> {
  const { config, runner, now, paths, log, progress } = deps;
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

  // A release upgrade: the new flake.nix is worked out before anything is copied, so that a url hv
  // cannot rewrite is refused at once.
  let release: ReleaseChange | undefined;
  const releaseReasons: string[] = [];
  if (opts.release) {
    const file = join(dir, 'flake.nix');
    const live = readFileSync(file, 'utf8');
    const moved = rewriteRelease(live, file, input, opts.release);
    release = { ...moved.change, liveFlakeNixSha256: sha256(live) };
    log.info('release upgrade planned', { from: release.fromRef, to: release.toRef, line: release.line });
    const running = runningRelease(previousSystem);
    if (compareReleases(opts.release, moved.from) < 0)
      releaseReasons.push(
        `release ${release.to} is lower than the tracked ${release.fromRef} (${input} in ${file})`,
      );
    if (running && compareReleases(opts.release, running) < 0)
      releaseReasons.push(
        `release ${release.to} is lower than the running NixOS ${versionOf(previousSystem) ?? releaseName(running)}`,
      );
  }

  // A lower release is refused before anything is copied, locked or built (nothing recorded).
  if (releaseReasons.length && !opts.allowDowngrade) refuseDowngrade(releaseReasons, log);

  progress.step('copying the flake to a staging dir');
  const stagingDir = createStaging(dir, paths.staging, now());
  if (release) {
    // Same mode as the copy (cpSync kept it): only the content changes.
    writeFileSync(join(stagingDir, 'flake.nix'), release.flakeNix);
    progress.step(`moving ${input} to ${release.toRef} in the staging flake.nix`);
  }
  const stagingFiles = inputsManifest(stagingDir);
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
  guardDowngrade(releaseReasons, opts, r, log);

  const fail = (step: string, kind: FailureKind, error: string, extra: { failedUnits?: string[] } = {}) => {
    r.status = 'failed';
    r.failedStep = step;
    r.failureKind = kind;
    r.error = error;
    r.guidance = guidanceFor(kind, {
      log: log.file,
      failedUnits: extra.failedUnits,
      checks: r.checks.filter((c) => !c.ok).map((c) => c.name),
    });
    return finish();
  };
  const finish = () => {
    r.finishedAt = now().toISOString();
    if (r.status === 'failed' && r.gcRoot) {
      rmSync(r.gcRoot, { force: true });
      r.gcRoot = undefined;
    }
    writeTestResult(paths, r);
    removeFiles(paths.testInProgress);
    log.info('upgrade test finished', { status: r.status, failedStep: r.failedStep, reverted: r.reverted });
    return r;
  };

  // Any unexpected error before activation is still a recorded FAILED test (a refusal is not).
  let step = 'update';
  const body = async (): Promise<TestResult> => {
    // 1. Update only the tracked input, in the staging copy.
    step = 'update';
    const nv = await nixVersion(runner, config.tools.nix);
    const extra = config.nix.extraArgs;
    progress.step(`updating ${input}`, `nix ${nv.text}`);
    const upd = await runner.run(updateInputArgv(nv, config.tools.nix, extra, stagingDir, input), {
      timeoutMs: 30 * 60_000,
      onLine: (l) => log.output(l),
    });
    if (upd.exitCode !== 0)
      return fail('update', 'update', lastLines(upd.spawnError ?? `${upd.stderr}\n${upd.stdout}`, 30));
    const stagingLock = readFlakeLock(stagingDir);
    const newNode = lockedInput(stagingLock, input);
    r.newRev = newNode.locked.rev;
    r.newLastModified = newNode.locked.lastModified;
    r.testedLock = stagingLock.text;
    r.testedLockSha256 = stagingLock.sha256;
    log.info('input updated', { input, oldRev: r.oldRev, newRev: r.newRev });

    // 2. Downgrade guard on the lock (cheap, before building).
    const downgrade: string[] = [];
    // Across release branches commit dates say nothing about newer or older: the release decides.
    if (
      !release &&
      r.newLastModified !== undefined &&
      r.oldLastModified !== undefined &&
      r.newLastModified < r.oldLastModified
    )
      downgrade.push(
        `${input} ${short(r.newRev)} (${new Date(r.newLastModified * 1000).toISOString()}) is older than the locked ${short(r.oldRev)} (${new Date(r.oldLastModified * 1000).toISOString()})`,
      );
    const running = runningRelease(previousSystem);
    const trackedRelease = releaseOfRef(
      typeof newNode.original.ref === 'string' ? newNode.original.ref : undefined,
    );
    if (running && trackedRelease && compareReleases(trackedRelease, running) < 0)
      downgrade.push(
        `the tracked branch ${newNode.original.ref} is release ${releaseName(trackedRelease)}, lower than the running ${releaseName(running)}`,
      );
    guardDowngrade(downgrade, opts, r, log);

    // 3. Build.
    step = 'evaluate';
    progress.step('finding the host configuration');
    const configuration = await resolveConfiguration(runner, config, stagingDir, log);
    r.configuration = configuration;
    step = 'build';
    const installable = `${stagingDir}#nixosConfigurations.${configuration}.config.system.build.toplevel`;
    progress.step('building the system', `${short(r.oldRev)} -> ${short(r.newRev)}`);
    log.info('build started', { installable });
    const build = await runner.run(buildArgv(config.tools.nix, extra, installable), {
      timeoutMs: 6 * 3600_000,
      onLine: (l) => log.output(l),
    });
    const toplevel = build.exitCode === 0 ? parseBuildOutput(build.stdout) : undefined;
    if (!toplevel) {
      const out = build.spawnError ?? `${build.stderr}\n${build.stdout}`;
      const kind = classifyBuild(out);
      log.error('build failed', { exitCode: build.exitCode, kind });
      return fail(kind === 'evaluation' ? 'evaluate' : 'build', kind, lastLines(out, 30));
    }
    r.toplevel = toplevel;
    r.version = versionOf(toplevel);
    log.info('build finished', { toplevel, version: r.version });
    // A downgrade allowed on the lock: now that the new version is known, record it.
    if (r.downgrade) markDowngrade(r);

    // 4. Downgrade guard on the built system's release.
    const built = releaseOfVersion(r.version);
    if (running && built && compareReleases(built, running) < 0)
      guardDowngrade(
        [
          `the new system is NixOS ${r.version}, a lower release than the running ${versionOf(previousSystem)}`,
        ],
        opts,
        r,
        log,
      );

    step = 'gc-root';
    r.gcRoot = await addGcRoot(runner, config, TESTED_ROOT, toplevel);

    // 5. Baseline, marker, activation.
    step = 'pre-check';
    progress.step('recording the running state');
    let baseline: Awaited<ReturnType<typeof healthBaseline>>;
    try {
      baseline = await healthBaseline(runner, config);
    } catch (e) {
      return fail(
        'pre-check',
        'internal',
        `could not record the state before activation: ${errorMessage(e)}`,
      );
    }
    const marker: InProgress = {
      ...selfIdentity(),
      startedAt,
      by: opts.by,
      toplevel,
      previousSystem,
      previousGeneration,
      result: r,
    };
    writeJsonAtomic(paths.testInProgress, marker);

    const revert = async () => {
      progress.step('re-activating the previous system');
      log.warn('reverting', { previousSystem });
      const back = await switchTo(runner, previousSystem, 'test', log);
      const current = systemPath(config.paths.currentSystem);
      r.reverted = back.ok && current === previousSystem;
      r.checks.push({
        name: 'revert to the previous system',
        ok: r.reverted,
        output: r.reverted
          ? `${previousSystem} is active again`
          : `switch-to-configuration test: ${describeExit(back.exitCode)}; current system: ${current ?? '?'}\n${back.output}`,
      });
    };

    try {
      progress.step('activating the new system (switch-to-configuration test)');
      const act: Activation = await switchTo(runner, toplevel, 'test', log);
      r.checks.push({
        name: 'activation (switch-to-configuration test)',
        ok: act.ok,
        output: `${describeExit(act.exitCode)}${act.output ? `\n${lastLines(act.output, 30)}` : ''}`,
      });
      if (!act.ok) {
        const units = await failedUnits(runner, config).catch(() => [] as string[]);
        const newly = units.filter((u) => !baseline.failedUnits.includes(u));
        await revert();
        return fail(
          'activate',
          classifyActivation(act.output),
          `switch-to-configuration test: ${describeExit(act.exitCode)}${newly.length ? `; failed units: ${newly.join(', ')}` : ''}\n${lastLines(act.output, 20)}`,
          { failedUnits: newly },
        );
      }
      r.rebootParts = rebootParts(toplevel, systemPath(config.paths.bootedSystem));
      r.rebootRequired = act.rebootRequired || r.rebootParts.length > 0;

      const settle = config.test.healthChecks.settleSec;
      if (settle > 0) {
        progress.step('letting units settle', `${settle}s`);
        await sleep(settle * 1000);
      }
      progress.step('health checks');
      const health = await runHealthChecks(runner, config, baseline, log);
      r.checks.push(...health.checks);
      const failed = health.checks.filter((c) => !c.ok);
      if (failed.length) {
        await revert();
        return fail(
          'health-check',
          health.newlyFailed.length && failed.length === 1 ? 'activation' : 'health',
          failed.map((c) => `${c.name}: ${c.output}`).join('\n'),
          { failedUnits: health.newlyFailed },
        );
      }
    } catch (e) {
      log.error('test crashed after activation', { error: errorMessage(e) });
      await revert().catch((x) => log.error('revert failed', { error: errorMessage(x) }));
      return fail('activate', 'internal', errorMessage(e));
    }
    r.status = 'passed';
    return finish();
  };
  try {
    return await body();
  } catch (e) {
    // A refusal or a configuration error is not a failed test: nothing is recorded or broadcast.
    if (isHvError(e) && (e.code === 'refused' || e.code === 'config-invalid')) throw e;
    log.error('upgrade test failed', { step, error: errorMessage(e) });
    return fail(step, 'internal', errorMessage(e));
  }
}
