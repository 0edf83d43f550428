import type { AnyCommand, CommandRegistry } from '../src/ports/command.js';
import { auditCommand } from './audit.js';
import { checkUpdatesCommand } from './check-updates.js';
import { confirmCommand } from './confirm.js';
import { daemonCommand } from './daemon.js';
import { diffCommand } from './diff.js';
import { emailIntakeCommand } from './email-intake.js';
import { helpCommand } from './help.js';
import { notifyCommand } from './notify.js';
import { rollbackCommand } from './rollback.js';
import { scheduleCommand } from './schedule.js';
import { statusCommand } from './status.js';
import { systemUpgradeCommand } from './system-upgrade.js';
import { upgradeTestCommand } from './upgrade-test.js';

/** Every command, by name: the one registry that the CLI, chat and email serve. */
export const commands = new Map<string, AnyCommand>();

const all: AnyCommand[] = [
  statusCommand,
  checkUpdatesCommand,
  auditCommand,
  upgradeTestCommand,
  diffCommand,
  scheduleCommand,
  daemonCommand({ findCommand, listCommands }),
  notifyCommand,
  systemUpgradeCommand,
  rollbackCommand,
  confirmCommand,
  emailIntakeCommand,
];
for (const c of all) commands.set(c.name, c);
commands.set('help', helpCommand(listCommands));

export function findCommand(name: string): AnyCommand | undefined {
  return commands.get(name);
}

/** Every registered command, in registration order (help, the bus and chat front ends list these). */
export function listCommands(): AnyCommand[] {
  return [...commands.values()];
}

/** Lookup and list, as the composition roots hand them to the bus and the daemon. */
export const commandRegistry: CommandRegistry = { findCommand, listCommands };

/**
 * Add a command to the registry (tests, and any later plug-in): it is served by the CLI, listed by
 * help and offered by every chat front end with no adapter change. Returns a function that removes
 * it again. A name that is taken is refused.
 */
export function registerCommand(cmd: AnyCommand): () => void {
  if (commands.has(cmd.name)) throw new Error(`a command named "${cmd.name}" is already registered`);
  commands.set(cmd.name, cmd);
  return () => {
    if (commands.get(cmd.name) === cmd) commands.delete(cmd.name);
  };
}
