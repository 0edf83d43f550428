import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HvError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../fs/atomic.js';
import { describeExit, switchTo } from './activation.js';
import { type ApplyDeps, readLastUpgrade } from './apply.js';
import { findLockForSystem } from './backup.js';
import { lastLines } from './nix.js';
import { currentGeneration, listGenerations, rebootParts, systemPath } from './system.js';

/** What `hv rollback` did. */
export interface RollbackRecord {
  status: 'rolled-back' | 'failed';
  at: string;
  by: string;
  fromGeneration: number | undefined;
  generation: number;
  system: string;
  /** The backup whose flake.lock was put back, if any matched the target system. */
  lockRestoredFrom: string | undefined;
  lockRestored: boolean;
  activationExit: number;
  rebootRequired: boolean;
  rebootParts: string[];
  error?: string;
}

/**
 * Return to a recorded generation: `--to N`, else the generation recorded before the last
 * system-upgrade. Switches the profile explicitly (`--switch-generation N`, never a relative
 * `--rollback`), activates it with `switch`, and restores the flake.lock backed up with that system.
 */
export async function rollbackTo(
  deps: ApplyDeps,
  by: string,
  to: number | undefined,
): Promise<RollbackRecord> {
  const { config, runner, now, paths, log, progress } = deps;
  const last = readLastUpgrade(paths);
  const generations = listGenerations(config.paths.profile);
  const list = generations.map((g) => g.number).join(', ') || 'none';
  const target = to ?? last?.previousGeneration;
  if (target === undefined)
    throw new HvError(
      'refused',
      `refused: nothing recorded to roll back to (no "hv system-upgrade" recorded a previous generation in ${paths.lastUpgrade}); use "hv rollback --to N" with one of the generations: ${list}`,
      { gate: 'recorded' },
    );
  const gen = generations.find((g) => g.number === target);
  if (!gen?.path)
    throw new HvError(
      'refused',
      `refused: generation ${target} of ${config.paths.profile} does not exist; generations are: ${list}`,
      { gate: 'generation exists', generations: generations.map((g) => g.number) },
    );
  const fromGeneration = currentGeneration(config.paths.profile);
  log.info('rollback started', { by, from: fromGeneration, to: target, system: gen.path });

  progress.step(`switching the profile to generation ${target}`);
  const sw = await runner.run(
    [config.tools.nixEnv, '-p', config.paths.profile, '--switch-generation', String(target)],
    { timeoutMs: 10 * 60_000, onLine: (l) => log.output(l) },
  );
  if (sw.exitCode !== 0)
    throw new HvError(
      'nix-failed',
      `nix-env -p ${config.paths.profile} --switch-generation ${target} failed (exit ${sw.exitCode}); nothing was changed: ${lastLines(sw.spawnError ?? sw.stderr, 10)}`,
    );

  progress.step(`activating generation ${target} (switch-to-configuration switch)`);
  const act = await switchTo(runner, gen.path, 'switch', log);

  // The lock that belongs to the target system: the last upgrade's backup when returning to the
  // generation it replaced, else the newest backup that knows that system.
  let saved: { file: string; backup: string } | undefined;
  if (
    last &&
    target === last.previousGeneration &&
    last.backupDir &&
    existsSync(join(last.backupDir, 'flake.lock'))
  )
    saved = { file: join(last.backupDir, 'flake.lock'), backup: last.backupDir };
  saved ??= findLockForSystem(paths.backups, gen.path);
  let lockRestored = false;
  if (saved) {
    progress.step('restoring the flake.lock of that generation');
    writeFileAtomic(join(config.flake.dir, 'flake.lock'), readFileSync(saved.file));
    lockRestored = true;
    log.info('flake.lock restored', { from: saved.file });
  } else {
    log.warn('no backed-up flake.lock for the target generation', { generation: target });
  }

  const rec: RollbackRecord = {
    status: act.ok ? 'rolled-back' : 'failed',
    at: now().toISOString(),
    by,
    fromGeneration,
    generation: target,
    system: gen.path,
    lockRestoredFrom: saved?.file,
    lockRestored,
    activationExit: act.exitCode,
    rebootParts: rebootParts(gen.path, systemPath(config.paths.bootedSystem)),
    rebootRequired: false,
  };
  rec.rebootRequired = act.rebootRequired || rec.rebootParts.length > 0;
  if (!act.ok)
    rec.error = `switch-to-configuration switch: ${describeExit(act.exitCode)}\n${lastLines(act.output, 20)}`;
  if (last && target === last.previousGeneration)
    writeJsonAtomic(paths.lastUpgrade, { ...last, rolledBackAt: rec.at });
  writeJsonAtomic(join(paths.dir, 'last-rollback.json'), rec);
  log.info('rollback finished', { status: rec.status, generation: target, lockRestored });
  return rec;
}
