import { z } from 'zod';
import '../src/engine/recovery-hook.js';
import type { UpgradeRecord } from '../src/engine/apply.js';
import { type Downgrade, downgradeLine, downgradeOf } from '../src/engine/downgrade.js';
import { Exit, errorMessage } from '../src/errors.js';
import { makeEvent } from '../src/notify/events.js';
import { removeFiles } from '../src/state.js';
import type { Command, CommandContext, CommandResult } from './types.js';

function summary(rec: UpgradeRecord, downgrade: string | undefined): string {
  const lines =
    rec.status === 'applied'
      ? [
          ...(downgrade ? [`${downgrade} was applied.`] : []),
          `System upgrade applied: generation ${rec.newGeneration} is ${rec.toplevel}${rec.version ? ` (${rec.version})` : ''}`,
          rec.operation === 'boot'
            ? 'It becomes active at the next boot (apply.operation = boot).'
            : 'It is active now (switch-to-configuration switch).',
          `Backup: ${rec.backupDir}`,
          `To go back: hv rollback   (returns to generation ${rec.previousGeneration})`,
        ]
      : [
          ...(downgrade ? [`${downgrade} did not activate cleanly.`] : []),
          `System upgrade FAILED while activating generation ${rec.newGeneration} (${rec.toplevel}):`,
          ...(rec.error ?? '').trim().split('\n').slice(0, 12),
          `The new generation stays the profile's current one; inspect the failed units (systemctl --failed, journalctl -b), or return with: hv rollback (to generation ${rec.previousGeneration})`,
        ];
  if (rec.rebootRequired)
    lines.push(
      `Reboot required to finish the upgrade${rec.rebootParts.length ? `: ${rec.rebootParts.join(', ')} differ from the booted system` : ''}.`,
    );
  return lines.join('\n');
}

export function actorLabel(ctx: CommandContext): string {
  return ctx.actor.channel === 'cli' ? ctx.actor.id : `${ctx.actor.channel}:${ctx.actor.id}`;
}

export const systemUpgradeCommand: Command<Record<string, never>> = {
  name: 'system-upgrade',
  summary: 'apply exactly the tested system permanently (new profile generation, switch or boot)',
  usage: 'hv system-upgrade [--yes] [--json]',
  role: 'admin',
  confirm: true,
  exclusive: true,
  flags: {},
  args: z.strictObject({}),
  async preview({ config, services }) {
    const { upgradePreview } = await import('../src/engine/preview.js');
    return upgradePreview(config, services.paths);
  },
  async run(ctx): Promise<CommandResult> {
    const [{ applyTested }, { readTestResult }] = await Promise.all([
      import('../src/engine/apply.js'),
      import('../src/engine/test-result.js'),
    ]);
    const { config, services, progress } = ctx;
    const { paths, now } = services;
    const log = services.opLog('system-upgrade');
    // The result the gates are about to approve (the host lock is held: nobody replaces it meanwhile).
    const tested = readTestResult(paths);
    let rec: UpgradeRecord;
    try {
      rec = await applyTested(
        { config, runner: services.runner, now, paths, log, progress },
        actorLabel(ctx),
      );
    } catch (e) {
      log.error('system upgrade not done', { error: errorMessage(e) });
      throw e;
    }
    const downgrade: Downgrade | undefined =
      tested && tested.toplevel === rec.toplevel ? downgradeOf(tested) : undefined;
    const downgradeText = downgrade ? downgradeLine(downgrade, rec.input) : undefined;
    if (downgradeText) log.warn('downgrade applied', { downgrade });
    const hub = await services.hub();
    if (rec.status === 'applied') {
      removeFiles(paths.updateText, paths.updateJson);
      await hub.reconcile(null);
    }
    const applied = rec.status === 'applied';
    const notifications = await hub.publish([
      makeEvent(
        applied ? 'upgrade.applied' : 'upgrade.failed',
        {
          host: config.host,
          key: `${rec.toplevel}@${rec.startedAt}`,
          title: applied
            ? `System upgrade applied on ${config.host}: ${downgradeText ?? rec.version ?? rec.toplevel} (generation ${rec.previousGeneration ?? '?'} → ${rec.newGeneration})${rec.rebootRequired ? '; reboot required' : ''}`
            : `System upgrade FAILED on ${config.host} activating generation ${rec.newGeneration}${downgradeText ? ` (${downgradeText})` : ''}`,
          // A downgrade as one line, so that every channel's fact list shows it.
          data: { ...rec, ...(downgradeText ? { downgrade: downgradeText } : {}) },
          next: applied ? (rec.rebootRequired ? 'reboot' : undefined) : 'hv rollback',
        },
        now(),
      ),
    ]);
    return {
      status: applied ? 'applied' : 'failed',
      exitCode: applied ? Exit.ok : Exit.failed,
      message: summary(rec, downgradeText),
      data: { ...rec, ...(downgrade ? { downgrade } : {}), notifications },
      audit: {
        fromGeneration: rec.previousGeneration,
        toGeneration: rec.newGeneration,
        toplevel: rec.toplevel,
        version: rec.version,
        oldRev: rec.oldRev,
        newRev: rec.newRev,
        ...(downgrade ? { downgrade } : {}),
      },
    };
  },
};
