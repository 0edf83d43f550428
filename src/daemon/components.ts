import { chmodSync, type FSWatcher, lchownSync, lstatSync, mkdirSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { createCommandBus, type HostedCommandBus } from '../bus/bus.js';
import type { ReplyAddress } from '../bus/types.js';
import { chatUser } from '../chatd/chat-user.js';
import type { EngineServer } from '../chatd/engine-server.js';
import { chatChannels } from '../chatd/secrets.js';
import { ChatSupervisor } from '../chatd/supervisor.js';
import { readWindow, windowFile } from '../engine/confirm-window.js';
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
  let watcher: FSWatcher | undefined;
  const component: DaemonComponent = {
    name: 'notify-delivery',
    async start() {
      abort = new AbortController();
      loop = hub.runLoop(abort.signal);
      // Operations run in their own processes and leave chat deliveries to the daemon: look as
      // soon as one is written, not at the next idle round.
      mkdirSync(hub.outboxDir, { recursive: true, mode: 0o700 });
      watcher = watch(hub.outboxDir, () => hub.wake());
      watcher.on('error', () => undefined);
    },
    async stop() {
      watcher?.close();
      abort?.abort();
      await loop;
    },
  };
  return [component];
};

/**
 * Watch for a confirmation window opening (`<state>/confirm-window.json`, written by the operation
 * that activated): calls `opened` once per window. fs.watch sees it at once; a slow poll covers a
 * missed event.
 */
function watchWindows(
  services: Services,
  opened: (w: NonNullable<ReturnType<typeof readWindow>>) => void,
): () => void {
  const { paths } = services;
  const name = windowFile(paths).slice(paths.dir.length + 1);
  let seen: string | undefined;
  const look = () => {
    try {
      const w = readWindow(paths);
      if (w && w.id !== seen) {
        seen = w.id;
        opened(w);
      }
    } catch (e) {
      services.log('warn', 'confirmation window unreadable', { error: errorMessage(e) });
    }
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(paths.dir, (_event, file) => {
      if (file === null || file === name) look();
    });
    watcher.on('error', () => undefined);
  } catch {
    // no inotify: the poll below still sees it
  }
  const timer = setInterval(look, 1000);
  timer.unref();
  // A window opened before the daemon started: its chat channels reconnect when the chat process
  // starts anyway; the first look only remembers it.
  try {
    seen = readWindow(paths)?.id;
  } catch {
    // reported by look()
  }
  return () => {
    watcher?.close();
    clearInterval(timer);
  };
}

/** chown a dir and everything under it (not following symlinks). */
function chownTree(path: string, uid: number, gid: number): void {
  lchownSync(path, uid, gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/**
 * The chat process and the engine's socket: the command bus serves requests that arrive over the
 * socket (src/chatd/engine-server.ts); under chatops.supervise = "daemon" the daemon also runs the
 * chat process as chatops.user and restarts it when it exits. After a restart the bus hands
 * finished-but-unreported operations back through the chat process.
 */
const chatProcess =
  (configPath: () => string | null, commands: CommandRegistry, server: EngineServer): ComponentFactory =>
  async (services: Services, log: JournalLog) => {
    const { config } = services;
    const chats = chatChannels(config.notify.channels, services.channels);
    if (chats.length === 0) return [];
    let bus: HostedCommandBus | undefined;
    let supervisor: ChatSupervisor | undefined;
    let unwatch: (() => void) | undefined;
    const component: DaemonComponent = {
      name: 'chat-process',
      async start() {
        const user = chatUser(config.chatops.user);
        mkdirSync(config.chatops.stateDir, { recursive: true, mode: 0o700 });
        // The whole tree: a file an older hv (or a root `hv email-intake`) left there must not stop
        // the chat process from reading its own dir.
        if (process.getuid?.() === 0) chownTree(config.chatops.stateDir, user.uid, user.gid);
        chmodSync(config.chatops.stateDir, 0o700);
        bus = createCommandBus(services, {
          ...commands,
          configPath: configPath(),
          // Its operations leave chat deliveries to this daemon (src/bus/operation-child.ts).
          env: { ...process.env, HV_CHAT_DELIVERY: 'daemon' },
        });
        const supervised = config.chatops.supervise === 'daemon';
        await server.start({
          services,
          bus,
          socketPath: config.chatops.socket,
          uid: user.uid,
          gid: user.gid,
          sendSecrets: supervised,
        });
        log('info', 'chat socket listening', { path: config.chatops.socket, user: config.chatops.user });
        if (supervised) {
          supervisor = new ChatSupervisor({
            services,
            socketPath: config.chatops.socket,
            uid: user.uid,
            gid: user.gid,
            home: config.chatops.stateDir,
          });
          supervisor.start();
        }
        // Dead-man confirmation: a window that chat reconnections may confirm makes every chat
        // connection start afresh, so that only a connection made after the activation counts.
        unwatch = watchWindows(services, (w) => {
          if (!w.wants.includes('chat') || !w.chatChannels.length) return;
          const asked = server.requestReconnect(w.id);
          log('info', 'confirmation window opened; chat reconnect requested', {
            window: w.id,
            deadline: w.deadline,
            chatProcess: asked ? 'asked' : 'not connected (its next start connects afresh)',
          });
        });
        const names = new Set(chats.filter((c) => c.intake).map((c) => c.settings.name ?? c.settings.type));
        const b = bus;
        // Results are handed over once a chat process is connected (the bus retries until then).
        void server.whenConnected().then(() => {
          const resumed = b.resumePending((address: ReplyAddress) =>
            names.has(address.channel) ? server.reply(address) : undefined,
          );
          if (resumed) log('info', 'resumed operations after restart', { count: resumed });
        });
      },
      async stop() {
        unwatch?.();
        await supervisor?.stop();
        await server.stop();
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
  chat: EngineServer,
): ComponentFactory[] {
  return [deliveryLoop, chatProcess(configPath, commands, chat)];
}
