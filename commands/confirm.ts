import { z } from 'zod';
import { actorLabel } from '../src/audit.js';
import { atLeast, roleOf } from '../src/bus/authorise.js';
import { HV } from '../src/cli-name.js';
import { Exit, HvError } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

function refuse(gate: string, message: string): never {
  throw new HvError('refused', `refused (gate "${gate}"): ${message}`, { gate });
}

/**
 * `hv confirm`: a human keeps the activation whose dead-man window is open (apply.confirm lists
 * "human"), from the host or from chat. Records `human` evidence; the waiting operation sees it and
 * ends the window. Not exclusive: the operation that waits holds the host lock.
 *
 * Nothing to confirm is a refusal (exit 3, as for every gate): the request was understood and
 * nothing changed, which a script must tell apart from a failure (exit 1).
 */
export const confirmCommand: Command<Record<string, never>> = {
  name: 'confirm',
  summary: 'keep the activation whose confirmation window is open (apply.confirm)',
  // From chat: the requester of the operation, or an admin (checked below against the window).
  role: 'operator',
  args: z.strictObject({}),
  async run(ctx): Promise<CommandResult> {
    const { readWindow, recordEvidence } = await import('../src/engine/confirm-window.js');
    const { config, services, actor } = ctx;
    const { paths, now } = services;
    const w = readWindow(paths);
    if (!w)
      refuse(
        'window open',
        `no confirmation window is open: no activation waits for confirmation${config.apply.confirm.length ? '' : ' (apply.confirm is empty: hv opens none)'}; see "${HV} status"`,
      );
    const by = actorLabel(actor);
    if (
      actor.channel !== 'cli' &&
      by !== w.requester &&
      !atLeast(roleOf(actor, config.chatops.roles), 'admin')
    )
      refuse(
        'requester or admin',
        `only the requester of the ${w.operation} (${w.requester}) or an admin can keep its activation`,
      );
    if (!w.wants.includes('human'))
      refuse(
        'human evidence counts',
        `apply.confirm is [${w.wants.map((k) => `"${k}"`).join(', ')}]: a human confirmation does not count for this window (open until ${w.deadline}); add "human" to apply.confirm to allow it`,
      );
    const at = now();
    if (at.getTime() > Date.parse(w.deadline))
      refuse(
        'in time',
        `the confirmation window closed at ${w.deadline}; the ${w.operation} of ${w.activated} is being undone`,
      );
    const detail = `${HV} confirm by ${actor.display ?? by}`;
    const recorded = recordEvidence(paths, {
      window: w.id,
      kind: 'human',
      at: at.toISOString(),
      by,
      detail,
    });
    if (!recorded) refuse('window open', `the confirmation window closed meanwhile; see "${HV} status"`);
    // Not exclusive, so execute() does not audit it: keeping an activation is on record anyway.
    await services.audit.append({
      actor,
      operation: 'confirm',
      result: 'ok',
      requestId: ctx.requestId,
      details: { window: w.id, operation: w.operation, activated: w.activated },
    });
    return {
      status: 'ok',
      exitCode: Exit.ok,
      message: `Confirmed: ${by} keeps the ${w.operation} activation of ${w.activated} (the window was open until ${w.deadline}).`,
      data: { window: w.id, operation: w.operation, activated: w.activated, deadline: w.deadline, by },
    };
  },
};
