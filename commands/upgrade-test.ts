import { z } from 'zod';
import { actorLabel } from '../src/audit.js';
import { downgradeLine } from '../src/engine/downgrade.js';
import type { TestResult } from '../src/engine/test-result.js';
import { Exit, errorMessage } from '../src/errors.js';
import type { Command, CommandResult } from './types.js';

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

function summary(r: TestResult, resultFile: string): string {
  const lines =
    r.status === 'passed'
      ? [
          `Upgrade Test: PASSED — ${r.input} ${short(r.oldRev)} -> ${short(r.newRev)}`,
          ...(r.downgrade ? [`${downgradeLine(r.downgrade, r.input)}, allowed with --allow-downgrade`] : []),
          `Tested system: ${r.toplevel}${r.version ? ` (${r.version})` : ''}`,
          `It stays active until the next reboot or switch. Next: hv system-upgrade`,
        ]
      : [
          `Upgrade Test: FAILED at ${r.failedStep}${r.reason ? ` (${r.reason})` : ''} — ${r.input} ${short(r.oldRev)} -> ${short(r.newRev)}`,
          ...(r.error ?? '').trim().split('\n').slice(0, 12),
          r.reverted
            ? `The previous system ${r.previousSystem} was re-activated.`
            : r.checks.some((c) => c.name.startsWith('activation'))
              ? 'WARNING: the previous system could NOT be re-activated; see the result file.'
              : 'Nothing was activated.',
          `What to do: ${r.guidance ?? ''}`,
        ];
  if (r.rebootRequired) lines.push(rebootNote(r.rebootParts));
  lines.push(`Details: ${resultFile}`);
  return lines.join('\n');
}

/**
 * A reboot drops a test activation, so "reboot now" would be wrong advice after a test: the new
 * kernel (or initrd, modules) only takes effect once the system is applied and then booted.
 */
export function rebootNote(parts: string[]): string {
  return `The new ${parts.length ? parts.join(', ') : 'boot configuration'} takes effect after "hv system-upgrade" and a reboot (a reboot now would drop this test activation).`;
}

export const upgradeTestCommand: Command<{ allowDowngrade: boolean }> = {
  name: 'upgrade-test',
  summary:
    'build the update from a staging copy, activate it without persisting, health-check, revert on failure',
  role: 'operator',
  exclusive: true,
  args: z.strictObject({
    allowDowngrade: z
      .boolean()
      .default(false)
      .describe('accept older software than the system runs (admin only)'),
  }),
  // Going back to older software (and its old security bugs) is the admin's decision.
  roleFor: (args) => (args.allowDowngrade ? { role: 'admin', what: '--allow-downgrade' } : undefined),
  async run(ctx, args): Promise<CommandResult> {
    // The engine loads here, not when any other command starts (hv status stays fast).
    const [{ runUpgradeTest }, { resultSummary, testEvent }] = await Promise.all([
      import('../src/engine/upgrade-test.js'),
      import('../src/engine/test-result.js'),
    ]);
    const { config, services, progress } = ctx;
    const log = services.opLog('upgrade-test');
    const r = await runUpgradeTest(
      { config, runner: services.runner, now: services.now, paths: services.paths, log, progress },
      { allowDowngrade: args.allowDowngrade, by: actorLabel(ctx.actor) },
    );
    if (r.downgradeAllowed)
      await services.audit.append({
        actor: ctx.actor,
        operation: 'upgrade-test',
        args,
        result: 'downgrade-allowed',
        requestId: ctx.requestId,
        details: { oldRev: r.oldRev, newRev: r.newRev, version: r.version, downgrade: r.downgrade },
      });
    let notifications: unknown = [];
    try {
      const hub = await services.hub();
      notifications = await hub.publish([testEvent(config, r, services.paths, services.now())]);
    } catch (e) {
      services.log('error', 'notification failed', { error: errorMessage(e) });
    }
    return {
      status: r.status,
      exitCode: r.status === 'passed' ? Exit.ok : Exit.failed,
      message: summary(r, services.paths.testText),
      data: { ...resultSummary(r), resultFile: services.paths.testText, notifications },
    };
  },
};
