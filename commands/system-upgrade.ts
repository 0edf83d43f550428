import { z } from 'zod';
import { actorLabel } from '../src/audit.js';
import { HV } from '../src/cli-name.js';
import type { UpgradeRecord } from '../src/engine/apply.js';
import { upgradeEvent } from '../src/engine/operation-events.js';
import { Exit, errorMessage } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';
import { removeFiles } from '../src/state.js';

function summary(rec: UpgradeRecord, downgrade: string | undefined): string {
  if (rec.notConfirmed) return revertedSummary(rec, rec.notConfirmed);
  const lines =
    rec.status === 'applied'
      ? [
          ...(downgrade ? [`${downgrade} was applied.`] : []),
          `System upgrade applied: generation ${rec.newGeneration} is ${rec.toplevel}${rec.version ? ` (${rec.version})` : ''}`,
          rec.operation === 'boot'
            ? 'It becomes active at the next boot (apply.operation = boot).'
            : 'It is active now (switch-to-configuration switch).',
          ...(rec.release
            ? [
                `Release upgrade ${rec.release.from} -> ${rec.release.to}: flake.nix (${rec.input} follows ${rec.release.toRef}) and flake.lock installed; system.stateVersion unchanged.`,
              ]
            : []),
          ...(rec.confirmedBy ? [`Activation ${rec.confirmedBy}.`] : []),
          `Backup: ${rec.backupDir}`,
          `To go back: ${HV} rollback   (returns to generation ${rec.previousGeneration})`,
        ]
      : [
          ...(downgrade ? [`${downgrade} did not activate cleanly.`] : []),
          `System upgrade FAILED while activating generation ${rec.newGeneration} (${rec.toplevel}):`,
          ...(rec.error ?? '').trim().split('\n').slice(0, 12),
          `The new generation stays the profile's current one; inspect the failed units (systemctl --failed, journalctl -b), or return with: ${HV} rollback (to generation ${rec.previousGeneration})`,
        ];
  if (rec.rebootRequired)
    lines.push(
      `Reboot required to finish the upgrade${rec.rebootParts.length ? `: ${rec.rebootParts.join(', ')} differ from the booted system` : ''}.`,
    );
  return lines.join('\n');
}

/** The dead-man revert: nobody confirmed the activation in time (apply.confirm). */
function revertedSummary(rec: UpgradeRecord, nc: NonNullable<UpgradeRecord['notConfirmed']>): string {
  return [
    `System upgrade REVERTED: ${nc.reason}.`,
    nc.ok
      ? `Generation ${rec.previousGeneration ?? '?'} (${rec.previousSystem ?? '?'}) runs again with its flake.lock: ${nc.detail}.`
      : `WARNING: the revert did not finish cleanly: ${nc.detail}.`,
    `The PASSED upgrade test no longer approves ${rec.toplevel}; find out why it was not confirmed (network, probes, chat), then run "${HV} upgrade-test" again.`,
  ].join('\n');
}

export const systemUpgradeCommand: Command<Record<string, never>> = {
  name: 'system-upgrade',
  summary: 'apply exactly the tested system permanently (new profile generation, switch or boot)',
  role: 'admin',
  confirm: true,
  exclusive: true,
  args: z.strictObject({}),
  async preview({ config, services }) {
    const { upgradePreview } = await import('../src/engine/preview.js');
    const preview = upgradePreview(config, services.paths);
    // apply.confirm: the prompt says that a dead-man window follows the switch.
    const [{ confirmPromptLine }, { reconnectingChannels }] = await Promise.all([
      import('../src/engine/confirm-text.js'),
      import('../src/config/fields.js'),
    ]);
    const window = confirmPromptLine(
      config,
      reconnectingChannels(config.notify.channels, services.channels),
      'the previous generation, system and flake.lock',
    );
    return window ? `${preview}\n${window}` : preview;
  },
  async run(ctx): Promise<CommandResult> {
    const { applyTested } = await import('../src/engine/apply.js');
    const { config, services, progress } = ctx;
    const { originOf } = await import('../src/engine/confirm-wait.js');
    const { paths, now } = services;
    const log = services.opLog('system-upgrade');
    let rec: UpgradeRecord;
    try {
      rec = await applyTested(
        { config, runner: services.runner, now, paths, log, progress, origin: originOf(ctx) },
        actorLabel(ctx.actor),
      );
    } catch (e) {
      log.error('system upgrade not done', { error: errorMessage(e) });
      throw e;
    }
    const { downgrade } = rec;
    const downgradeText = rec.downgradeLine;
    const hub = await services.hub();
    if (rec.status === 'applied') {
      removeFiles(paths.updateText, paths.updateJson);
      await hub.reconcile(null);
    }
    const applied = rec.status === 'applied';
    const notifications = await hub.publish([upgradeEvent(config, rec, now())]);
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
