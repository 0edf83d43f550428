import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config/schema.js';
import { writeJsonAtomic } from './fs/atomic.js';

/** Names of every state file, derived from the config. */
export function statePaths(config: Config) {
  const s = config.paths.state;
  return {
    dir: s,
    updateText: join(s, 'update-available'),
    updateJson: join(s, 'update-available.json'),
    lastCheck: join(s, 'last-check.json'),
    testText: join(s, 'upgrade-test-result'),
    testJson: join(s, 'upgrade-test-result.json'),
    testInProgress: join(s, 'upgrade-test-in-progress.json'),
    lastUpgrade: join(s, 'last-upgrade.json'),
    lastRollback: join(s, 'last-rollback.json'),
    journal: join(s, 'operation-journal.json'),
    journalFromLock: join(s, 'operation-journal.from.lock'),
    journalToLock: join(s, 'operation-journal.to.lock'),
    staging: join(s, 'staging'),
    backups: join(s, 'backups'),
    cache: join(s, 'cache'),
    notify: join(s, 'notify'),
    operations: join(s, 'operations'),
  };
}
export type StatePaths = ReturnType<typeof statePaths>;

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export { writeJsonAtomic };

export function removeFiles(...paths: string[]): void {
  for (const p of paths) rmSync(p, { force: true });
}
