import type { Config } from '../config/schema.js';
import type { OpLog } from '../log.js';
import type { Runner } from '../proc.js';
import type { CheckOutcome } from './test-result.js';

/** What ran before activation, to compare with afterwards. */
export interface HealthBaseline {
  failedUnits: string[];
  vms: string[] | null;
}

const lines = (t: string) =>
  t
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Units systemd lists as failed (first column of `list-units --state=failed`). */
export async function failedUnits(runner: Runner, config: Config): Promise<string[]> {
  const r = await runner.run(
    [config.tools.systemctl, 'list-units', '--state=failed', '--plain', '--no-legend', '--full'],
    { timeoutMs: 60_000 },
  );
  if (r.exitCode !== 0)
    throw new Error(`systemctl list-units failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return lines(r.stdout)
    .map((l) => l.split(/\s+/)[0] as string)
    .filter((u) => u && u !== '●');
}

async function listVms(runner: Runner, argv: string[]): Promise<string[]> {
  const r = await runner.run(argv, { timeoutMs: 60_000 });
  if (r.exitCode !== 0 || r.spawnError)
    throw new Error(`${argv.join(' ')} failed (exit ${r.exitCode}): ${(r.spawnError ?? r.stderr).trim()}`);
  return lines(r.stdout);
}

/** Take the baseline before activation. Throws when it cannot be had (then nothing is activated). */
export async function healthBaseline(runner: Runner, config: Config): Promise<HealthBaseline> {
  const vmsCmd = config.test.healthChecks.vms?.command;
  return {
    failedUnits: await failedUnits(runner, config),
    vms: vmsCmd ? await listVms(runner, vmsCmd) : null,
  };
}

/**
 * The health checks of SPEC: configured services active, no newly failed unit, every VM that ran
 * before still runs, each custom command exits 0 within its timeout.
 */
export async function runHealthChecks(
  runner: Runner,
  config: Config,
  before: HealthBaseline,
  log: OpLog,
): Promise<{ checks: CheckOutcome[]; newlyFailed: string[] }> {
  const hc = config.test.healthChecks;
  const checks: CheckOutcome[] = [];
  const record = (c: CheckOutcome) => {
    checks.push(c);
    log.info('health check', { name: c.name, ok: c.ok });
    log.output(c.output);
  };
  for (const svc of hc.services) {
    const r = await runner.run([config.tools.systemctl, 'is-active', svc], { timeoutMs: 60_000 });
    record({
      name: `service ${svc}`,
      ok: r.exitCode === 0,
      output: (r.spawnError ?? `${r.stdout}${r.stderr}`).trim() || `exit ${r.exitCode}`,
    });
  }
  let newlyFailed: string[] = [];
  try {
    const after = await failedUnits(runner, config);
    newlyFailed = after.filter((u) => !before.failedUnits.includes(u));
    record({
      name: 'no newly failed units',
      ok: newlyFailed.length === 0,
      output: newlyFailed.length
        ? `failed since activation: ${newlyFailed.join(', ')}`
        : `failed before: ${before.failedUnits.join(', ') || 'none'}; after: ${after.join(', ') || 'none'}`,
    });
  } catch (e) {
    record({ name: 'no newly failed units', ok: false, output: (e as Error).message });
  }
  if (hc.vms && before.vms) {
    try {
      const after = await listVms(runner, hc.vms.command);
      const gone = before.vms.filter((v) => !after.includes(v));
      record({
        name: 'VMs still running',
        ok: gone.length === 0,
        output: gone.length
          ? `no longer running: ${gone.join(', ')} (before: ${before.vms.join(', ')}; after: ${after.join(', ') || 'none'})`
          : `running: ${after.join(', ') || 'none'}`,
      });
    } catch (e) {
      record({ name: 'VMs still running', ok: false, output: (e as Error).message });
    }
  }
  for (const c of hc.commands) {
    const r = await runner.run(c.argv, { timeoutMs: c.timeoutSec * 1000 });
    const out = (r.spawnError ?? `${r.stdout}${r.stderr}`).trim();
    record({
      name: `command ${c.name}`,
      ok: r.exitCode === 0 && !r.timedOut && !r.spawnError,
      output: r.timedOut
        ? `timed out after ${c.timeoutSec}s${out ? `\n${out}` : ''}`
        : out || `exit ${r.exitCode}`,
    });
  }
  return { checks, newlyFailed };
}
