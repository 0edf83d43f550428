import { resolveConfiguration } from './configurations.js';
import { guardDowngrade, markDowngrade } from './downgrade.js';
import { type LockedInput, lockedInput, readFlakeLock } from './flake-lock.js';
import { classifyBuild } from './guidance.js';
import { addGcRoot, buildArgv, lastLines, nixVersion, parseBuildOutput, updateInputArgv } from './nix.js';
import { compareReleases, releaseName, releaseOfRef, releaseOfVersion } from './releases.js';
import { versionOf } from './system.js';
import { type Failure, runningRelease, short, type TestRun } from './upgrade-test-run.js';

/** Name of the GC root that keeps the last tested system alive until it is applied. */
export const TESTED_ROOT = 'tested-system';

/** Step "update": update only the tracked input, in the staging copy; the result gets the new lock. */
export async function updateInput(run: TestRun): Promise<{ newNode: LockedInput } | Failure> {
  run.step = 'update';
  const { config, runner, log, progress } = run.deps;
  const { r, stagingDir } = run;
  const { input } = config.flake;
  const nv = await nixVersion(runner, config.tools.nix);
  progress.step(`updating ${input}`, `nix ${nv.text}`);
  const upd = await runner.run(
    updateInputArgv(nv, config.tools.nix, config.nix.extraArgs, stagingDir, input),
    {
      timeoutMs: 30 * 60_000,
      onLine: (l) => log.output(l),
    },
  );
  if (upd.exitCode !== 0)
    return {
      failedStep: 'update',
      kind: 'update',
      error: lastLines(upd.spawnError ?? `${upd.stderr}\n${upd.stdout}`, 30),
    };
  const stagingLock = readFlakeLock(stagingDir);
  const newNode = lockedInput(stagingLock, input);
  r.newRev = newNode.locked.rev;
  r.newLastModified = newNode.locked.lastModified;
  r.testedLock = stagingLock.text;
  r.testedLockSha256 = stagingLock.sha256;
  log.info('input updated', { input, oldRev: r.oldRev, newRev: r.newRev });
  return { newNode };
}

/**
 * Step "downgrade guard on the lock" (cheap, before building): an older revision, or a tracked
 * branch of a lower release than the running one, is refused unless `--allow-downgrade`.
 */
export function guardLockDowngrade(run: TestRun, newNode: LockedInput): void {
  const { r, release, previousSystem, opts } = run;
  const { config, log } = run.deps;
  const { input } = config.flake;
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
}

/** Step "evaluate": find the host's nixosConfigurations entry in the staging copy. */
export async function resolveHostConfiguration(run: TestRun): Promise<string> {
  run.step = 'evaluate';
  const { config, runner, log, progress } = run.deps;
  progress.step('finding the host configuration');
  const configuration = await resolveConfiguration(runner, config, run.stagingDir, log);
  run.r.configuration = configuration;
  return configuration;
}

/** Step "build": build the system from the staging copy; the result gets its toplevel and version. */
export async function buildSystem(
  run: TestRun,
  configuration: string,
): Promise<{ toplevel: string } | Failure> {
  run.step = 'build';
  const { config, runner, log, progress } = run.deps;
  const { r } = run;
  const installable = `${run.stagingDir}#nixosConfigurations.${configuration}.config.system.build.toplevel`;
  progress.step('building the system', `${short(r.oldRev)} -> ${short(r.newRev)}`);
  log.info('build started', { installable });
  const build = await runner.run(buildArgv(config.tools.nix, config.nix.extraArgs, installable), {
    timeoutMs: 6 * 3600_000,
    onLine: (l) => log.output(l),
  });
  const toplevel = build.exitCode === 0 ? parseBuildOutput(build.stdout) : undefined;
  if (!toplevel) {
    const out = build.spawnError ?? `${build.stderr}\n${build.stdout}`;
    const kind = classifyBuild(out);
    log.error('build failed', { exitCode: build.exitCode, kind });
    return { failedStep: kind === 'evaluation' ? 'evaluate' : 'build', kind, error: lastLines(out, 30) };
  }
  r.toplevel = toplevel;
  r.version = versionOf(toplevel);
  log.info('build finished', { toplevel, version: r.version });
  // A downgrade allowed on the lock: now that the new version is known, record it.
  if (r.downgrade) markDowngrade(r);
  return { toplevel };
}

/** Step "downgrade guard on the build": the built system's release against the running one. */
export function guardBuildDowngrade(run: TestRun): void {
  const { r, previousSystem, opts } = run;
  const running = runningRelease(previousSystem);
  const built = releaseOfVersion(r.version);
  if (running && built && compareReleases(built, running) < 0)
    guardDowngrade(
      [`the new system is NixOS ${r.version}, a lower release than the running ${versionOf(previousSystem)}`],
      opts,
      r,
      run.deps.log,
    );
}

/** Step "gc-root": keep the tested system alive until it is applied (dropped again if the test fails). */
export async function addTestedRoot(run: TestRun, toplevel: string): Promise<void> {
  run.step = 'gc-root';
  run.r.gcRoot = await addGcRoot(run.deps.runner, run.deps.config, TESTED_ROOT, toplevel);
}
