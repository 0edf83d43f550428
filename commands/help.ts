import { z } from 'zod';
import { Exit } from '../src/errors.js';
import type { AnyCommand, Command, CommandResult } from './types.js';

/** `help` lists the commands a front end serves; `list` is filled in by the registry. */
export function helpCommand(list: () => AnyCommand[]): Command<Record<string, never>> {
  return {
    name: 'help',
    summary: 'list the commands',
    usage: 'hv help',
    role: 'viewer',
    fastStart: true,
    unprivileged: true,
    flags: {},
    args: z.strictObject({}),
    async run(ctx): Promise<CommandResult> {
      // Chat and email list only what they serve.
      const cmds = list().filter((c) => ctx.actor.channel === 'cli' || !c.cliOnly);
      const width = Math.max(...cmds.map((c) => c.name.length));
      const lines = cmds.map(
        (c) => `  ${c.name.padEnd(width)}  ${c.summary}${c.confirm ? ' (admin, asks for confirmation)' : ''}`,
      );
      return {
        status: 'ok',
        exitCode: Exit.ok,
        message: ['Commands:', ...lines].join('\n'),
        data: {
          commands: cmds.map((c) => ({ name: c.name, summary: c.summary, role: c.role, usage: c.usage })),
        },
      };
    },
  };
}
