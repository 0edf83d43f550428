import { join } from 'node:path';
import type { OpLog } from '../log.js';
import type { Runner } from '../proc.js';

export type SwitchAction = 'test' | 'switch' | 'boot';

/** The outcome of `<system>/bin/switch-to-configuration <action>`. */
export interface Activation {
  exitCode: number;
  /** 0, or 100 (done, reboot required). */
  ok: boolean;
  /** Exit 100: the switch succeeded but needs a reboot to finish. */
  rebootRequired: boolean;
  /** Exit 4: the switch happened but some units failed. */
  failedUnits: boolean;
  output: string;
}

/** What an exit code of switch-to-configuration means, in words. */
export function describeExit(code: number): string {
  if (code === 0) return 'ok';
  if (code === 100) return 'ok, reboot required';
  if (code === 4) return 'some units failed to start (exit 4)';
  return `failed (exit ${code})`;
}

/**
 * Run `<system>/bin/switch-to-configuration <action>`, streaming its output into the op log. Exit
 * codes are signals, not crashes: 4 = failed units, 100 = reboot required.
 */
export async function switchTo(
  runner: Runner,
  system: string,
  action: SwitchAction,
  log: OpLog,
  timeoutMs = 30 * 60_000,
): Promise<Activation> {
  const argv = [join(system, 'bin', 'switch-to-configuration'), action];
  log.info('activation started', { system, action });
  const r = await runner.run(argv, { timeoutMs, onLine: (l) => log.output(l) });
  const output = (r.spawnError ?? `${r.stdout}${r.stderr}`).trim();
  const exitCode = r.spawnError ? 127 : r.exitCode;
  log.info('activation finished', { system, action, exitCode });
  return {
    exitCode,
    ok: exitCode === 0 || exitCode === 100,
    rebootRequired: exitCode === 100,
    failedUnits: exitCode === 4,
    output,
  };
}
