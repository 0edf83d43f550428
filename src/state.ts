import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import type { Config } from './config/schema.js';
import { HvError } from './errors.js';
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

/**
 * A record as JSON keeps it: a key whose value may be undefined may be missing altogether
 * (JSON.stringify drops it). Deep, for nested records.
 */
export type Stored<T> = T extends (infer U)[]
  ? Stored<U>[]
  : T extends object
    ? { [K in keyof T as undefined extends T[K] ? K : never]?: Stored<T[K]> } & {
        [K in keyof T as undefined extends T[K] ? never : K]: Stored<T[K]>;
      }
    : T;

/**
 * Read a persisted record through its schema. Only a missing file means "none" (null); a file that
 * cannot be read, is not JSON or does not match the schema is an HvError('state-corrupt') naming
 * the file, what is wrong and what to do — never a crash or a silent default.
 */
export function readRecord<T>(
  path: string,
  schema: z.ZodType<Stored<T>, z.ZodTypeDef, unknown>,
  what: string,
): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new HvError('state-corrupt', `cannot read ${what} ${path}: ${code ?? String(e)}`, { path });
  }
  const fix = `it was damaged or edited by hand; move it aside (mv ${path} ${path}.broken) and run the command that writes it again`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HvError(
      'state-corrupt',
      `${what} ${path} is not valid JSON (${(e as Error).message}); ${fix}`,
      {
        path,
      },
    );
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`)
      .join('; ');
    throw new HvError('state-corrupt', `${what} ${path} is not a valid record (${issues}); ${fix}`, { path });
  }
  // A missing optional key and a key holding undefined are the same record.
  return r.data as T;
}

export { writeJsonAtomic };

export function removeFiles(...paths: string[]): void {
  for (const p of paths) rmSync(p, { force: true });
}
