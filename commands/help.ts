import { z } from 'zod';
import { HV } from '../src/cli-name.js';
import { commandOptions, helpText, usageLine } from '../src/command-options.js';
import { Exit } from '../src/errors.js';
import type { AnyCommand, Command, CommandResult } from '../src/ports/command.js';

/** `help` lists the commands a front end serves; `list` is filled in by the registry. */
export function helpCommand(list: () => AnyCommand[]): Command<Record<string, never>> {
  return {
    name: 'help',
    summary: 'list the commands',
    role: 'viewer',
    fastStart: true,
    unprivileged: true,
    args: z.strictObject({}),
    async run(ctx): Promise<CommandResult> {
      // Chat and email list only what they serve, as their users type it.
      const channel = ctx.actor.channel;
      const cmds = list().filter((c) => channel === 'cli' || !c.cliOnly);
      const prog = channel === 'cli' || channel === 'email' ? HV : '/hv';
      const style = channel === 'discord' ? 'named' : 'words';
      return {
        status: 'ok',
        exitCode: Exit.ok,
        message: helpText(cmds, prog, style),
        data: {
          commands: cmds.map((c) => ({
            name: c.name,
            summary: c.summary,
            role: c.role,
            usage: usageLine(c, prog, style),
            options: commandOptions(c).map(({ name, kind, required, description, choices }) => ({
              name,
              kind,
              required,
              description,
              ...(choices ? { choices } : {}),
            })),
          })),
        },
      };
    },
  };
}
