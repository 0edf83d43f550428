import { existsSync } from 'node:fs';
import { actorLabel } from './audit.js';
import { HV } from './cli-name.js';
import { windowFile } from './engine/confirm-window.js';
import { Exit, errorMessage, isHvError } from './errors.js';
import { makeDir } from './fs/atomic.js';
import { assertSecretsTrusted, assertStateTrusted } from './fs/trust.js';
import { acquireLock, type Lock } from './lock.js';
import type { AnyCommand, CommandContext, CommandResult } from './ports/command.js';
import { warnReadableSecret } from './services.js';

/**
 * Run one command for any front end: recovery of interrupted operations, the host lock for exclusive commands,
 * error mapping to exit codes, and an audit record of the outcome.
 */
export async function execute(
  cmd: AnyCommand,
  args: Record<string, unknown>,
  ctx: CommandContext,
): Promise<CommandResult> {
  const { services } = ctx;
  // Before anything reads or writes state: files another user could have written decide nothing.
  // Refused without an audit record (the audit log is in the dir that is not trusted).
  if (!cmd.unprivileged) {
    try {
      assertStateTrusted(services.paths.dir, ctx.config.paths.log);
      for (const path of assertSecretsTrusted(ctx.config)) warnReadableSecret(path, services.log);
    } catch (e) {
      if (!isHvError(e)) throw e;
      return {
        status: 'error',
        exitCode: e.exitCode,
        message: e.message,
        data: { code: e.code, ...e.details },
      };
    }
  }
  // Read-only commands (help, status) leave no trace on disk.
  if (cmd.exclusive) makeDir(services.paths.dir, 0o700);
  // An operation that died mid-way (or inside its confirmation window) is finished or undone before
  // anything else runs. The check is three stats; the recovery code loads only when a marker exists.
  let recovered: string[] = [];
  let recoveryError: unknown;
  if (
    existsSync(services.paths.journal) ||
    existsSync(services.paths.testInProgress) ||
    existsSync(windowFile(services.paths))
  ) {
    try {
      const { recoverInterrupted } = await import('./engine/recover.js');
      recovered = await recoverInterrupted(ctx);
    } catch (e) {
      services.log('error', 'startup recovery failed', { error: errorMessage(e) });
      // Another hv holding the lock is finishing its own operation: that is not a failure here.
      if (!(isHvError(e) && e.code === 'busy')) recoveryError = e;
    }
  }
  // A command that changes the system must not run over an operation nobody could finish or undo
  // (e.g. a damaged journal): the host's state is unknown. Read-only commands run and say so.
  const refuse = recoveryError !== undefined && (cmd.exclusive || cmd.confirm);
  let result = refuse ? notRun(cmd.name, recoveryError) : await runLocked(cmd, ctx, args);
  if (recoveryError !== undefined && !refuse)
    result = {
      ...result,
      message: `Warning: an interrupted operation could not be finished or undone: ${errorMessage(recoveryError)}\n\n${result.message}`,
      data: { ...result.data, recoveryFailed: errorMessage(recoveryError) },
    };
  if (recovered.length) {
    result = {
      ...result,
      message: `${recovered.join('\n')}\n\n${result.message}`,
      data: { ...result.data, recovered },
    };
  }
  if (cmd.exclusive || cmd.confirm || result.status === 'busy') {
    await services.audit.append({
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

/** The result of a command that did not run because recovery failed. */
function notRun(name: string, e: unknown): CommandResult {
  return {
    status: isHvError(e) && e.exitCode === Exit.refused ? 'refused' : 'error',
    exitCode: isHvError(e) ? e.exitCode : Exit.failed,
    message: `An interrupted operation could not be finished or undone: ${errorMessage(e)}\n${name} did not run; fix that first ("${HV} status" shows the state).`,
    data: { code: isHvError(e) ? e.code : 'internal', recoveryFailed: true },
    audit: { recoveryFailed: errorMessage(e) },
  };
}

/** Run the command under the host lock when it is exclusive; errors become results. */
async function runLocked(cmd: AnyCommand, ctx: CommandContext, args: unknown): Promise<CommandResult> {
  let lock: Lock | undefined;
  try {
    if (cmd.exclusive) lock = acquireLock(ctx.services.paths.dir, cmd.name, actorLabel(ctx.actor));
    return await cmd.run(ctx, args);
  } catch (e) {
    if (!isHvError(e)) {
      ctx.services.log('error', 'command crashed', { command: cmd.name, error: errorMessage(e) });
      return {
        status: 'error',
        exitCode: Exit.failed,
        message: `${cmd.name} failed: ${errorMessage(e)}`,
        data: {},
      };
    }
    const status = e.code === 'busy' ? 'busy' : e.exitCode === Exit.refused ? 'refused' : 'error';
    return { status, exitCode: e.exitCode, message: e.message, data: { code: e.code, ...e.details } };
  } finally {
    lock?.release();
  }
}
