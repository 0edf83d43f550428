import { userInfo } from 'node:os';
import { channelTypes } from '../../adapters/registry.js';
import { commands, findCommand } from '../../commands/index.js';
import { HV } from '../cli-name.js';
import { parseCommandArgs, validateArgs } from '../command-args.js';
import { checkSchedule, loadConfig } from '../config/load.js';
import { Exit, errorMessage, HvError, isHvError } from '../errors.js';
import { execute } from '../execute.js';
import type { AnyCommand, CommandResult, PreviewContext } from '../ports/command.js';
import { HV_UMASK } from '../proc.js';
import { createServices } from '../services.js';
import { parseGlobal } from './args.js';
import { terminalProgress } from './progress.js';

function print(result: CommandResult, json: boolean): void {
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ status: result.status, message: result.message, ...result.data })}\n`,
    );
    return;
  }
  const out =
    result.exitCode === Exit.ok || result.exitCode === Exit.updateAvailable ? process.stdout : process.stderr;
  out.write(`${result.message}\n`);
}

function fail(e: unknown, json: boolean): number {
  const code = isHvError(e) ? e.exitCode : Exit.failed;
  const message = isHvError(e) ? e.message : `internal error: ${errorMessage(e)}`;
  if (json) {
    const status = isHvError(e) && e.code === 'busy' ? 'busy' : 'error';
    process.stdout.write(
      `${JSON.stringify({ status, message, code: isHvError(e) ? e.code : 'internal' })}\n`,
    );
  }
  process.stderr.write(`hv: ${message}\n`);
  return code;
}

async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

const indented = (head: string, text: string) =>
  `${[head, ...text.split('\n').map((l) => `  ${l}`)].join('\n')}\n`;

/** The command's preview of what it will change; a failure to tell is said, never fatal. */
async function previewOf(
  cmd: AnyCommand,
  args: Record<string, unknown>,
  ctx: PreviewContext,
): Promise<string | undefined> {
  try {
    return await cmd.preview?.(ctx, args);
  } catch (e) {
    return `(hv could not tell what will change: ${errorMessage(e)})`;
  }
}

/**
 * A command that runs outside the engine (`email-intake`, run by an MTA as the chat user): no root,
 * no state dir, lock, recovery or audit; every failure, a bad config included, is `failureExit`.
 */
async function standalone(
  cmd: AnyCommand,
  failureExit: number,
  g: ReturnType<typeof parseGlobal>,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  try {
    const args = validateArgs(cmd, parseCommandArgs(cmd, g.rest));
    const { config } = loadConfig(g.config, env, channelTypes);
    const services = createServices(config, { channels: channelTypes });
    const result = await cmd.run(
      {
        config,
        actor: { channel: 'cli', id: String(process.getuid?.() ?? 'unknown') },
        services,
        progress: { step() {} },
        confirmed: false,
        configFlag: g.config,
      },
      args,
    );
    print(result, g.json);
    return result.exitCode;
  } catch (e) {
    fail(e, g.json);
    return failureExit;
  }
}

/** The `hv` command line. Returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let json = argv.includes('--json');
  try {
    const g = parseGlobal(argv);
    json = g.json;
    const name = g.command ?? 'help';
    const cmd = findCommand(name);
    if (!cmd)
      throw new HvError(
        'usage',
        `unknown command "${name}"; must be one of ${[...commands.keys()].join(', ')}`,
      );
    if (cmd.standalone) return await standalone(cmd, cmd.standalone.failureExit, g, env);
    const args = validateArgs(cmd, parseCommandArgs(cmd, g.rest));
    const { config, path } = loadConfig(g.config, env, channelTypes);
    if (!cmd.fastStart) await checkSchedule(config, path ? `config ${path}` : 'config');
    if (!cmd.unprivileged && process.getuid?.() !== 0 && !config.allowNonRoot)
      throw new HvError(
        'not-root',
        `"${HV} ${cmd.name}" must run as root (or set "allowNonRoot": true in the config for sandboxes)`,
      );
    const services = createServices(config, {
      channels: channelTypes,
      log: (level, msg, fields) => {
        if (level !== 'info')
          process.stderr.write(`hv: ${level}: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
      },
    });
    const progress = terminalProgress();
    let confirmed = g.yes;
    if (cmd.confirm) {
      // Say what will change before asking, and also when --yes asked nothing (logs keep it).
      const preview = await previewOf(cmd, args, { config, services });
      if (!confirmed) {
        if (!process.stdin.isTTY)
          throw new HvError(
            'usage',
            `"${HV} ${cmd.name}" changes the system; pass --yes to confirm (stdin is not a terminal)`,
          );
        if (preview)
          process.stderr.write(indented(`About to run "${HV} ${cmd.name}" on ${config.host}:`, preview));
        confirmed = await confirm(`Really run "${HV} ${cmd.name}" on ${config.host}?`);
        if (!confirmed) throw new HvError('usage', 'not confirmed; nothing was changed');
      } else if (preview) {
        process.stderr.write(
          indented(`hv: running "${HV} ${cmd.name}" on ${config.host} (confirmed with --yes):`, preview),
        );
      }
    }
    const user = (() => {
      try {
        return userInfo().username;
      } catch {
        return String(process.getuid?.() ?? 'unknown');
      }
    })();
    const result = await execute(cmd, args, {
      config,
      actor: { channel: 'cli', id: env.SUDO_USER ? `${env.SUDO_USER} (as ${user})` : user },
      services,
      progress,
      confirmed,
      configFlag: g.config,
    });
    progress.done();
    print(result, json);
    return result.exitCode;
  } catch (e) {
    return fail(e, json);
  }
}

/** Entry for the bin aliases: `hv-check-updates` is `hv check-updates`. */
export function runAs(command: string | undefined): void {
  // Not the caller's umask: under umask 000 the state and log files would be world-writable.
  process.umask(HV_UMASK);
  const argv = process.argv.slice(2);
  main(command ? [command, ...argv] : argv).then(
    // A one-shot command is done when main resolves: exit even if a chat client's socket lingers
    // (stdout and stderr are synchronous on Linux, nothing is lost).
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`hv: ${errorMessage(e)}\n`);
      process.exit(1);
    },
  );
}
