import { auditCommand } from './audit.js';
import { checkUpdatesCommand } from './check-updates.js';
import { daemonCommand } from './daemon.js';
import { helpCommand } from './help.js';
import { notifyCommand } from './notify.js';
import { rollbackCommand } from './rollback.js';
import { scheduleCommand } from './schedule.js';
import { statusCommand } from './status.js';
import { systemUpgradeCommand } from './system-upgrade.js';
import type { AnyCommand } from './types.js';
import { upgradeTestCommand } from './upgrade-test.js';

/** Every command, by name: the one registry that the CLI, chat and email serve. */
export const commands = new Map<string, AnyCommand>();

const all: AnyCommand[] = [
  statusCommand,
  checkUpdatesCommand,
  auditCommand,
  upgradeTestCommand,
  scheduleCommand,
  daemonCommand,
  notifyCommand,
  systemUpgradeCommand,
  rollbackCommand,
];
for (const c of all) commands.set(c.name, c);
commands.set(
  'help',
  helpCommand(() => [...commands.values()]),
);

export function findCommand(name: string): AnyCommand | undefined {
  return commands.get(name);
}
