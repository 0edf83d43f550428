import { mkdirSync } from 'node:fs';
import type { AnyCommand, CommandContext, CommandResult } from '../commands/types.js';
import { Exit, errorMessage, isHvError } from './errors.js';
import { acquireLock, type Lock } from './lock.js';

/** Hooks run before any command (e.g. recovery of an interrupted upgrade test). */
export type StartupHook = (ctx: CommandContext) => Promise<void>;
const startupHooks: StartupHook[] = [];
export function onStartup(hook: StartupHook): void {
  startupHooks.push(hook);
}

function actorName(ctx: CommandContext): string {
  return ctx.actor.channel === 'cli' ? ctx.actor.id : `${ctx.actor.channel}:${ctx.actor.id}`;
}

/**
 * Run one command for any front end: startup recovery, the host lock for exclusive commands,
 * error mapping to exit codes, and an audit record of the outcome.
 */
export async function execute(
  cmd: AnyCommand,
  args: Record<string, unknown>,
  ctx: CommandContext,
): Promise<CommandResult> {
  const { services } = ctx;
  // Read-only commands (help, status) leave no trace on disk.
  if (cmd.exclusive) mkdirSync(services.paths.dir, { recursive: true });
  for (const hook of startupHooks) {
    try {
      await hook(ctx);
    } catch (e) {
      services.log('error', 'startup recovery failed', { error: errorMessage(e) });
    }
  }
  let lock: Lock | undefined;
  let result: CommandResult;
  try {
    if (cmd.exclusive) lock = acquireLock(services.paths.dir, cmd.name, actorName(ctx));
    result = await cmd.run(ctx, args);
  } catch (e) {
    if (!isHvError(e)) {
      services.log('error', 'command crashed', { command: cmd.name, error: errorMessage(e) });
      result = {
        status: 'error',
        exitCode: Exit.failed,
        message: `${cmd.name} failed: ${errorMessage(e)}`,
        data: {},
      };
    } else {
      const status = e.code === 'busy' ? 'busy' : e.code === 'refused' ? 'refused' : 'error';
      result = { status, exitCode: e.exitCode, message: e.message, data: { code: e.code, ...e.details } };
    }
  } finally {
    lock?.release();
  }
  if (cmd.exclusive || cmd.confirm || result.status === 'busy') {
    services.audit.append({
      actor: ctx.actor,
      operation: cmd.name,
      args,
      result: result.status,
      requestId: ctx.requestId,
      details: { exitCode: result.exitCode, ...result.audit },
    });
  }
  return result;
}
