import { createCommandBus, type HostedCommandBus } from '../bus/bus.js';
import type { ReplyAddress } from '../bus/types.js';
import { errorMessage } from '../errors.js';
import type { CommandRegistry } from '../ports/command.js';
import type { Services } from '../services.js';
import type { ComponentFactory, DaemonComponent } from './daemon.js';
import type { JournalLog } from './journal.js';

/** The notification delivery loop: retries, backoff and digests while the daemon runs. */
const deliveryLoop: ComponentFactory = async (services) => {
  const hub = await services.hub();
  let abort: AbortController | undefined;
  let loop: Promise<void> | undefined;
  const component: DaemonComponent = {
    name: 'notify-delivery',
    async start() {
      abort = new AbortController();
      loop = hub.runLoop(abort.signal);
    },
    async stop() {
      abort?.abort();
      await loop;
    },
  };
  return [component];
};

/**
 * Chat intake: the command bus plus every channel whose adapter takes commands (`start`). After a
 * restart the bus hands finished-but-unreported operations back to the adapter that asked.
 */
const chatIntake =
  (configPath: () => string | null, commands: CommandRegistry): ComponentFactory =>
  async (services: Services, log: JournalLog) => {
    const hub = await services.hub();
    const intake = hub.channels.filter((c) => typeof c.adapter.start === 'function');
    if (intake.length === 0) return [];
    let bus: HostedCommandBus | undefined;
    const started: typeof intake = [];
    const component: DaemonComponent = {
      name: 'chat-intake',
      async start() {
        bus = createCommandBus(services, { ...commands, configPath: configPath() });
        for (const ch of intake) {
          try {
            await ch.adapter.start?.({ bus });
            started.push(ch);
            log('info', 'chat adapter connected', { channel: ch.adapter.name, type: ch.adapter.type });
          } catch (e) {
            log('error', 'chat adapter failed to start; check its token and settings', {
              channel: ch.adapter.name,
              error: errorMessage(e),
            });
          }
        }
        const resumed = bus.resumePending((address: ReplyAddress) => {
          const ch = started.find((c) => c.adapter.name === address.channel);
          return ch?.adapter.replyFor?.(address);
        });
        if (resumed) log('info', 'resumed operations after restart', { count: resumed });
      },
      async stop() {
        for (const ch of started.splice(0).reverse()) {
          try {
            await ch.adapter.stop?.();
          } catch (e) {
            log('warn', 'chat adapter failed to stop', { channel: ch.adapter.name, error: errorMessage(e) });
          }
        }
        await bus?.stop();
      },
    };
    return [component];
  };

/**
 * The layers the daemon hosts besides the schedule. Each factory returns the components its layer
 * needs for the current config (none when nothing is configured). The bus serves `commands`.
 */
export function daemonComponents(
  configPath: () => string | null,
  commands: CommandRegistry,
): ComponentFactory[] {
  return [deliveryLoop, chatIntake(configPath, commands)];
}
