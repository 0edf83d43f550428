import { z } from 'zod';
import { actorLabel } from '../src/audit.js';
import { HV } from '../src/cli-name.js';
import { rollbackEvent } from '../src/engine/operation-events.js';
import type { RollbackRecord } from '../src/engine/rollback.js';
import { Exit, errorMessage } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

function summary(rec: RollbackRecord): string {
  if (rec.notConfirmed)
    return [
      `Rollback to generation ${rec.generation} REVERTED: ${rec.notConfirmed.reason}.`,
      rec.notConfirmed.ok
        ? `Generation ${rec.fromGeneration ?? '?'} runs again, as before the rollback: ${rec.notConfirmed.detail}.`
        : `WARNING: the revert did not finish cleanly: ${rec.notConfirmed.detail}.`,
    ].join('\n');
  const lines =
    rec.status === 'rolled-back'
      ? [
          `Rolled back to generation ${rec.generation} (${rec.system}); it is active now.`,
          ...(rec.confirmedBy ? [`Activation ${rec.confirmedBy}.`] : []),
        ]
      : [
          `Rollback to generation ${rec.generation} did not finish cleanly:`,
          ...(rec.error ?? '').trim().split('\n').slice(0, 12),
          'The profile points at that generation; inspect systemctl --failed and journalctl -b.',
        ];
  lines.push(
    rec.lockRestored
      ? `flake.lock restored from ${rec.lockRestoredFrom}`
      : 'flake.lock left as it is: no backup matches that generation.',
  );
  if (rec.flakeNixRestoredFrom)
    lines.push(
      `flake.nix restored from ${rec.flakeNixRestoredFrom} (the rollback undoes a release upgrade)${rec.flakeNixReplaced ? `; the replaced one is kept in ${rec.flakeNixReplaced}` : ''}`,
    );
  if (rec.testInvalidated)
    lines.push(
      `The last PASSED upgrade test no longer approves an upgrade: run "${HV} upgrade-test" before "${HV} system-upgrade".`,
    );
  if (rec.rebootRequired) lines.push(`Reboot required to finish: ${rec.rebootParts.join(', ') || 'yes'}.`);
  return lines.join('\n');
}

export const rollbackCommand: Command<{ to?: number }> = {
  name: 'rollback',
  summary: 'return to the generation recorded before the last system-upgrade (or --to N)',
  role: 'admin',
  confirm: true,
  exclusive: true,
  args: z.strictObject({
    to: z.coerce
      .number()
      .int('must be a generation number')
      .positive('must be a generation number')
      .optional()
      .describe('the generation to return to (default: the one before the last upgrade)'),
  }),
  async preview({ config, services }, args) {
    const { rollbackPreview } = await import('../src/engine/preview.js');
    const preview = await rollbackPreview(config, services.paths, services.runner, args.to);
    // apply.confirm: the prompt says that a dead-man window follows the switch.
    const [{ confirmPromptLine }, { reconnectingChannels }] = await Promise.all([
      import('../src/engine/confirm-text.js'),
      import('../src/config/fields.js'),
    ]);
    const window = confirmPromptLine(
      config,
      reconnectingChannels(config.notify.channels, services.channels),
      'the generation, system and flake.lock that run now',
    );
    return window ? `${preview}\n${window}` : preview;
  },
  async run(ctx, args): Promise<CommandResult> {
    const { rollbackTo } = await import('../src/engine/rollback.js');
    const { config, services, progress } = ctx;
    const { originOf } = await import('../src/engine/confirm-wait.js');
    const { paths, now } = services;
    const log = services.opLog('system-upgrade');
    let rec: RollbackRecord;
    try {
      rec = await rollbackTo(
        { config, runner: services.runner, now, paths, log, progress, origin: originOf(ctx) },
        actorLabel(ctx.actor),
        args.to,
      );
    } catch (e) {
      log.error('rollback not done', { error: errorMessage(e) });
      throw e;
    }
    const hub = await services.hub();
    const done = rec.status === 'rolled-back';
    const notifications = await hub.publish([rollbackEvent(config, rec, now())]);
    // The generation now running may be behind upstream again: the notices say so at once, not at
    // the next scheduled check. A failing check does not make the rollback fail.
    const { checkUpdatesCommand } = await import('./check-updates.js');
    const check = await checkUpdatesCommand.run(ctx, {});
    return {
      status: done ? 'rolled-back' : 'failed',
      exitCode: done ? Exit.ok : Exit.failed,
      message: `${summary(rec)}\n\nUpdate check after the rollback:\n${check.message}`,
      data: { ...rec, notifications, check: { status: check.status, message: check.message } },
      audit: { fromGeneration: rec.fromGeneration, toGeneration: rec.generation, system: rec.system },
    };
  },
};
