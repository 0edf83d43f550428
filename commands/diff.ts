import { z } from 'zod';
import { Exit } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

const System = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must be a path or a generation number');

/**
 * `hv diff [--from PATH|GEN] [--to PATH|GEN]`: what changes between two systems (packages,
 * kernel, closure size). Defaults: the running system → the system of the last upgrade test.
 */
export const diffCommand: Command<{ from?: string; to?: string }> = {
  name: 'diff',
  summary: 'show what changes between two systems (default: running → last tested)',
  role: 'viewer',
  args: z.strictObject({
    from: System.optional().describe(
      'a store path, a link to one or a generation number (default: the running system)',
    ),
    to: System.optional().describe(
      'a store path, a link to one or a generation number (default: the last tested system)',
    ),
  }),
  async run({ config, services }, args): Promise<CommandResult> {
    const { defaultSystems, resolveSystem, systemDiff } = await import('../src/engine/closure.js');
    const { diffLines } = await import('../src/engine/closure-diff-text.js');
    const defaults = defaultSystems(config, services.paths);
    const from =
      args.from === undefined ? defaults.from() : { path: resolveSystem(config, args.from, '--from') };
    const to = args.to === undefined ? defaults.to() : resolveSystem(config, args.to, '--to');
    const diff = await systemDiff(services.runner, config, from.path, to);
    return {
      status: 'ok',
      exitCode: Exit.ok,
      message: [
        `From: ${from.path}${from.note ? ` (${from.note})` : ''}`,
        `To:   ${to}${args.to === undefined ? ' (the last tested system)' : ''}`,
        ...diffLines(diff, config.test.watch),
      ].join('\n'),
      data: diff as unknown as Record<string, unknown>,
    };
  },
};
