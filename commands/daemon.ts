import { z } from 'zod';
import { channelTypes } from '../adapters/registry.js';
import { HV } from '../src/cli-name.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { Exit } from '../src/errors.js';
import type { Command, CommandRegistry, CommandResult } from '../src/ports/command.js';
import { checkUpdatesCommand } from './check-updates.js';

/**
 * `hv daemon`: runs until SIGTERM (exit 0); SIGHUP reloads the config. The daemon's composition
 * root: it hands the daemon the channel types, the scheduled command and the commands its bus
 * serves (`commands`, given by commands/index.ts, which cannot be imported from here: a cycle).
 */
export const daemonCommand = (commands: CommandRegistry): Command<Record<string, never>> => ({
  name: 'daemon',
  summary: 'scheduler, notification delivery and chat intake; runs until SIGTERM',
  role: 'admin',
  cliOnly: true,
  args: z.strictObject({}),
  async run(ctx): Promise<CommandResult> {
    // The daemon's parts load here, not when any other command starts.
    const [{ Daemon }, { daemonComponents }, { journalLog }, { EngineServer }] = await Promise.all([
      import('../src/daemon/daemon.js'),
      import('../src/daemon/components.js'),
      import('../src/daemon/journal.js'),
      import('../src/chatd/engine-server.js'),
    ]);
    const log = journalLog();
    // The engine loads no chat library: channels whose token the chat process holds are delivered
    // through it (the socket server), never opened here.
    const chat = new EngineServer();
    const daemon: Daemon = new Daemon({
      configFlag: ctx.configFlag,
      env: process.env,
      log,
      channels: channelTypes,
      scheduledCommand: checkUpdatesCommand,
      components: daemonComponents(() => daemon.configPath, commands, chat),
      notifierFor: (channel) =>
        channelTypes.get(channel.type)?.placement(channel).notifier === 'chat'
          ? chat.notifier(channel)
          : undefined,
    });
    // Signals are handled from the first moment: a SIGTERM during start waits for start, then stops.
    let started: Promise<void> = Promise.resolve();
    let reloading: Promise<void> = Promise.resolve();
    let terminating = false;
    const stopped = new Promise<void>((resolve) => {
      const onHup = () => {
        reloading = reloading.then(() => started).then(() => daemon.reload());
      };
      const onTerm = (signal: string) => {
        if (terminating) return;
        terminating = true;
        process.off('SIGHUP', onHup);
        log('info', 'signal received', { signal });
        // Bounded: whatever happens, exit within 10 s of SIGTERM.
        setTimeout(() => process.exit(0), 9500).unref();
        void started
          .catch(() => undefined)
          .then(() => reloading)
          .then(() => daemon.stop())
          .then(resolve, resolve);
      };
      process.on('SIGHUP', onHup);
      // `on`, not `once`: execa's signal-exit re-raises a signal nobody else listens to any more.
      process.on('SIGTERM', () => onTerm('SIGTERM'));
      process.on('SIGINT', () => onTerm('SIGINT'));
    });
    log('info', 'daemon starting', { pid: process.pid });
    started = daemon.start();
    await started; // a refusal (busy, invalid config) is the command's result
    await stopped;
    return { status: 'ok', exitCode: Exit.ok, message: `${HV} daemon stopped`, data: {} };
  },
});
