import { z } from 'zod';
import { actorLabel } from '../src/audit.js';
import { HV } from '../src/cli-name.js';
import { changesLine, changesSection } from '../src/engine/changes-text.js';
import { downgradeLine } from '../src/engine/downgrade.js';
import type { TestResult } from '../src/engine/test-result.js';
import { Exit, errorMessage } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

const short = (rev: string | undefined) => (rev ? rev.slice(0, 12) : '?');

function summary(r: TestResult, resultFile: string, watch: readonly string[]): string {
  const lines =
    r.status === 'passed'
      ? [
          `Upgrade Test: PASSED — ${r.input} ${short(r.oldRev)} -> ${short(r.newRev)}`,
          ...(r.downgrade ? [`${downgradeLine(r.downgrade, r.input)}, allowed with --allow-downgrade`] : []),
          ...(r.release ? [releaseLine(r)] : []),
          `Tested system: ${r.toplevel}${r.version ? ` (${r.version})` : ''}`,
          ...(r.confirmedBy ? [`Activation ${r.confirmedBy}.`] : []),
          ...(r.changes || r.changesError ? [changesLine(r, watch) as string] : []),
          `It stays active until the next reboot or switch. Next: ${HV} system-upgrade${r.release ? ' (installs the tested flake.nix and flake.lock)' : ''}`,
        ]
      : [
          `Upgrade Test: FAILED at ${r.failedStep}${r.reason ? ` (${r.reason})` : ''} — ${r.input} ${short(r.oldRev)} -> ${short(r.newRev)}`,
          ...(r.release ? [releaseLine(r)] : []),
          ...(r.error ?? '').trim().split('\n').slice(0, 12),
          r.reverted
            ? `The previous system ${r.previousSystem} was re-activated.`
            : r.checks.some((c) => c.name.startsWith('activation'))
              ? 'WARNING: the previous system could NOT be re-activated; see the result file.'
              : 'Nothing was activated.',
          `What to do: ${r.guidance ?? ''}`,
        ];
  if (r.rebootRequired) lines.push(rebootNote(r.rebootParts));
  // The full list after the verdict and the advice, so that those stay on the first screen.
  if (r.status === 'passed' && r.changes) lines.push('', ...changesSection(r, watch), '');
  lines.push(`Details: ${resultFile}`);
  return lines.join('\n');
}

function releaseLine(r: TestResult): string {
  const x = r.release as NonNullable<TestResult['release']>;
  return `Release upgrade ${x.from} -> ${x.to}: ${r.input} follows ${x.toRef} in the staging flake.nix (line ${x.line}); the live flake.nix and flake.lock are unchanged; system.stateVersion is not touched`;
}

/**
 * A reboot drops a test activation, so "reboot now" would be wrong advice after a test: the new
 * kernel (or initrd, modules) only takes effect once the system is applied and then booted.
 */
export function rebootNote(parts: string[]): string {
  return `The new ${parts.length ? parts.join(', ') : 'boot configuration'} takes effect after "${HV} system-upgrade" and a reboot (a reboot now would drop this test activation).`;
}

/** `--release`: `24.11` or `nixos-24.11`, normalised to `24.11`. */
const ReleaseArg = z
  .string()
  .regex(
    /^(?:nixos-)?\d{2}\.(?:0[1-9]|1[0-2])$/,
    'must be a NixOS release as YY.MM or nixos-YY.MM, e.g. 24.11 or nixos-24.11',
  )
  .transform((v) => v.replace(/^nixos-/, ''));

export const upgradeTestCommand: Command<{ allowDowngrade: boolean; release?: string }> = {
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
    release: ReleaseArg.optional().describe(
      'move the tracked input to this NixOS release first (YY.MM; staging copy only)',
    ),
  }),
  // Going back to older software (and its old security bugs) is the admin's decision.
  roleFor: (args) => (args.allowDowngrade ? { role: 'admin', what: '--allow-downgrade' } : undefined),
  async run(ctx, args): Promise<CommandResult> {
    // The engine loads here, not when any other command starts (hv status stays fast).
    const [{ runUpgradeTest }, { resultSummary, testEvent }, { releaseOfArg }, { originOf }] =
      await Promise.all([
        import('../src/engine/upgrade-test.js'),
        import('../src/engine/test-result.js'),
        import('../src/engine/release-upgrade.js'),
        import('../src/engine/confirm-wait.js'),
      ]);
    const { config, services, progress } = ctx;
    const log = services.opLog('upgrade-test');
    const r = await runUpgradeTest(
      {
        config,
        runner: services.runner,
        now: services.now,
        paths: services.paths,
        log,
        progress,
        origin: originOf(ctx),
      },
      {
        allowDowngrade: args.allowDowngrade,
        by: actorLabel(ctx.actor),
        ...(args.release ? { release: releaseOfArg(args.release) } : {}),
      },
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
      message: summary(r, services.paths.testText, config.test.watch),
      data: { ...resultSummary(r), resultFile: services.paths.testText, notifications },
    };
  },
};
