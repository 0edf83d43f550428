/**
 * The engine's side of privilege separation: a Unix socket only the chat user can reach (the
 * socket's dir is root:<chat group> 0750, the socket 0660, and each connection's peer uid is
 * checked through the kernel), over which the chat process asks for a short list of things:
 * submit / confirm / cancel a request, verify a signed request. The engine answers with replies
 * for a request's thread and with notification deliveries. Every message is validated
 * (protocol.ts); the engine re-validates and authorises each request itself (the bus).
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Actor } from '../audit.js';
import type { HostedCommandBus } from '../bus/bus.js';
import type { Reply, ReplyAddress } from '../bus/types.js';
import { recordEvidence } from '../engine/confirm-window.js';
import { errorMessage } from '../errors.js';
import type { HvEvent } from '../events.js';
import { type ChannelAdapter, type ChannelSettings, DeliveryError } from '../ports/channel.js';
import type { Services } from '../services.js';
import { peerCred } from './peer-cred.js';
import { ChatMessage, decode, type EngineMessage, PROTOCOL_VERSION, type ReplyCall } from './protocol.js';
import { chatChannels, chatSecrets } from './secrets.js';
import { Calls, type Link, socketLink } from './transport.js';

/** What the server serves; given at `start`, since the hub (which uses `notifier`) exists earlier. */
export interface EngineServerOptions {
  services: Services;
  bus: HostedCommandBus;
  socketPath: string;
  /** The only uid allowed to connect (the chat user; the daemon's own uid when it is not root). */
  uid: number;
  /** The chat user's group: the socket's dir and the socket belong to it. */
  gid: number;
  /** Hand the chat process its secrets over the socket (false: systemd's LoadCredential does). */
  sendSecrets: boolean;
  /** `ss` (iproute2) for the peer check. */
  ss?: string;
  /** How long a reply or delivery may take in the chat process. */
  callTimeoutMs?: number;
}

type Answer = Extract<ChatMessage, { t: 'reply-done' | 'delivered' }>;

const HELLO_TIMEOUT_MS = 5000;

export class EngineServer {
  private server: Server | undefined;
  private current: Link | undefined;
  private readonly calls = new Calls<Answer>(() => this.current);
  private readonly connectedWaiters: (() => void)[] = [];
  private opts!: EngineServerOptions;
  private log: Services['log'] = () => {};

  /** Make the socket's dir, listen, and give the socket to root:<chat group> 0660. */
  async start(opts: EngineServerOptions): Promise<void> {
    this.opts = opts;
    this.log = opts.services.log;
    const { socketPath, gid } = opts;
    const dir = dirname(socketPath);
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    if (process.getuid?.() === 0) chownSync(dir, 0, gid);
    chmodSync(dir, 0o750);
    try {
      if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
      else throw new Error(`${socketPath} exists and is not a socket; remove it or set chatops.socket`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const server = createServer((socket) => void this.accept(socket));
    server.maxConnections = 4;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (process.getuid?.() === 0) chownSync(socketPath, 0, gid);
    chmodSync(socketPath, 0o660);
    this.server = server;
  }

  async stop(): Promise<void> {
    this.current?.close('engine stopping');
    this.current = undefined;
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    try {
      if (this.opts) unlinkSync(this.opts.socketPath);
    } catch {
      // already gone
    }
  }

  get connected(): boolean {
    return Boolean(this.current && !this.current.closed);
  }

  /** Resolves when a chat process is connected (at once if one is). */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((r) => this.connectedWaiters.push(r));
  }

  private async accept(socket: Socket): Promise<void> {
    let who: { pid: number; uid: number };
    try {
      who = await peerCred(socket, this.opts.ss);
    } catch (e) {
      this.log('error', 'chat socket: cannot tell who connected; refused', { error: errorMessage(e) });
      socket.destroy();
      return;
    }
    if (who.uid !== this.opts.uid) {
      this.log('warn', 'chat socket: refused a connection from another user', {
        uid: who.uid,
        pid: who.pid,
        allowed: this.opts.uid,
      });
      await this.opts.services.audit.append({
        actor: { channel: 'socket', id: `uid:${who.uid}`, display: `pid ${who.pid}` },
        operation: 'connect',
        result: 'denied',
        details: { reason: `uid ${who.uid} is not the chat user (uid ${this.opts.uid})` },
      });
      socket.destroy();
      return;
    }
    const link = socketLink(socket);
    const hello = setTimeout(() => link.close('no hello'), HELLO_TIMEOUT_MS);
    let greeted = false;
    link.onMessage((text) => {
      const msg = decode(ChatMessage, text);
      if (typeof msg === 'string') {
        this.log('warn', 'chat socket: message refused', { reason: msg.slice(0, 300), pid: who.pid });
        return;
      }
      if (!greeted) {
        if (msg.t !== 'hello') return link.close('expected hello');
        greeted = true;
        clearTimeout(hello);
        this.welcome(link, who.pid);
        return;
      }
      void this.handle(link, msg);
    });
    link.onClose((reason) => {
      clearTimeout(hello);
      if (this.current === link) {
        this.current = undefined;
        this.calls.failAll(`the chat process disconnected (${reason})`);
        this.log('warn', 'chat process disconnected', { reason, pid: who.pid });
      }
    });
  }

  private welcome(link: Link, pid: number): void {
    const { services, sendSecrets } = this.opts;
    const channels = chatChannels(services.config.notify.channels, services.channels);
    const secrets: Record<string, string> = {};
    if (sendSecrets)
      for (const c of channels)
        for (const s of chatSecrets(c.settings, services.channels)) {
          try {
            secrets[s.path] = services.readSecret(s.path);
          } catch (e) {
            // The adapter reports a missing secret itself, naming the file and the key.
            this.log('error', 'chat secret unreadable', { id: s.id, error: errorMessage(e) });
          }
        }
    const message: EngineMessage = {
      t: 'welcome',
      v: PROTOCOL_VERSION,
      // Parsed again by the chat process; hostSource is derived, not a key of the file.
      config: (({ hostSource: _, ...rest }) => rest)(services.config) as unknown as Record<string, unknown>,
      channels: channels.map((c) => ({
        settings: c.settings as unknown as Record<string, unknown>,
        intake: c.intake,
        notifier: c.notifier,
      })),
      secrets,
    };
    const old = this.current;
    this.current = link;
    old?.close('replaced by a new chat process connection');
    link.send(message);
    this.log('info', 'chat process connected', { pid });
    for (const w of this.connectedWaiters.splice(0)) w();
  }

  /** The chat channels and their types, to check what a request may claim. */
  private intakeChannel(name: string): ChannelSettings | undefined {
    const { config, channels } = this.opts.services;
    const settings = config.notify.channels.find((c) => (c.name ?? c.type) === name);
    return settings && channels.get(settings.type)?.placement(settings).intake ? settings : undefined;
  }

  /**
   * A request may only arrive through a channel that takes commands, and only for an identity of
   * that channel's platform: a compromised chat process cannot speak for another platform.
   */
  private misrouted(replyTo: ReplyAddress, actor: { channel: string }): string | undefined {
    const settings = this.intakeChannel(replyTo.channel);
    if (!settings) return `channel "${replyTo.channel}" takes no commands`;
    if (actor.channel !== settings.type)
      return `a ${actor.channel} identity cannot arrive through ${settings.type} channel "${replyTo.channel}"`;
    return undefined;
  }

  private async handle(link: Link, msg: ChatMessage): Promise<void> {
    const { bus } = this.opts;
    const answer = (m: EngineMessage) => link.send(m);
    try {
      switch (msg.t) {
        case 'hello':
          return;
        case 'reply-done':
        case 'delivered':
          this.calls.answer(msg);
          return;
        case 'connected':
          this.onConnected(msg);
          return;
        case 'keep': {
          const wrong = this.misrouted(msg.replyTo, msg.actor);
          if (wrong) return this.refuseMisrouted(link, msg.call, wrong, msg.actor, 'keep');
          const reply = this.reply(msg.replyTo, msg.replyId);
          const outcome = bus.keep
            ? await bus.keep(msg.token, msg.actor, reply, msg.evidence)
            : ({ kind: 'refused', reason: 'this engine has no confirmation windows' } as const);
          answer({ t: 'outcome', call: msg.call, outcome });
          return;
        }
        case 'verify': {
          const ok = await bus.verify(msg.channel, msg.evidence);
          answer({ t: 'verified', call: msg.call, ok });
          return;
        }
        case 'submit': {
          const req = msg.request;
          const wrong = this.misrouted(req.replyTo, req.actor);
          if (wrong) return this.refuseMisrouted(link, msg.call, wrong, req.actor, req.command, req.id);
          const outcome = await bus.submit(req, this.reply(req.replyTo, msg.replyId));
          answer({ t: 'outcome', call: msg.call, outcome });
          return;
        }
        case 'confirm': {
          const wrong = this.misrouted(msg.replyTo, msg.actor);
          if (wrong) return this.refuseMisrouted(link, msg.call, wrong, msg.actor, 'confirm');
          const outcome = await bus.confirm(
            msg.token,
            msg.actor,
            this.reply(msg.replyTo, msg.replyId),
            msg.evidence,
          );
          answer({ t: 'outcome', call: msg.call, outcome });
          return;
        }
        case 'cancel': {
          const wrong = this.misrouted(msg.replyTo, msg.actor);
          if (wrong) return this.refuseMisrouted(link, msg.call, wrong, msg.actor, 'cancel');
          await bus.cancel(msg.token, msg.actor, this.reply(msg.replyTo, msg.replyId), msg.evidence);
          answer({ t: 'outcome', call: msg.call });
          return;
        }
      }
    } catch (e) {
      this.log('error', 'chat request failed in the engine', { t: msg.t, error: errorMessage(e) });
      if ('call' in msg) answer({ t: 'outcome', call: msg.call, error: errorMessage(e) });
    }
  }

  /**
   * A chat channel (re)connected to its platform: chat evidence for the open confirmation window, if
   * any. Only a configured chat channel counts, and only at a time not after now (a connection made
   * before the window opened is filtered by the window's openedAt).
   */
  private onConnected(msg: Extract<ChatMessage, { t: 'connected' }>): void {
    const { services } = this.opts;
    const settings = services.config.notify.channels.find((c) => (c.name ?? c.type) === msg.channel);
    if (!settings || services.channels.get(settings.type)?.placement(settings).notifier !== 'chat') {
      this.log('warn', 'chat connection report for an unknown channel ignored', { channel: msg.channel });
      return;
    }
    const now = services.now();
    const told = Date.parse(msg.at);
    const at = Number.isFinite(told) && told <= now.getTime() ? new Date(told) : now;
    try {
      const w = recordEvidence(services.paths, {
        kind: 'chat',
        channel: msg.channel,
        at: at.toISOString(),
        detail: msg.detail,
      });
      this.log('info', 'chat channel connected', {
        channel: msg.channel,
        detail: msg.detail,
        ...(w ? { window: w.id } : {}),
      });
    } catch (e) {
      this.log('error', 'cannot record chat evidence', { channel: msg.channel, error: errorMessage(e) });
    }
  }

  /**
   * Ask the chat process to drop and re-establish every platform connection (a confirmation window
   * `window` opened). False when no chat process is connected: one that connects later opens fresh
   * connections anyway and reports them.
   */
  requestReconnect(window: string): boolean {
    if (!this.connected || !this.current) return false;
    this.current.send({ t: 'reconnect', window } satisfies EngineMessage);
    return true;
  }

  private async refuseMisrouted(
    link: Link,
    call: number,
    reason: string,
    actor: Actor,
    operation: string,
    requestId?: string,
  ): Promise<void> {
    this.log('warn', 'chat request refused: misrouted', { reason });
    await this.opts.services.audit.append({
      actor,
      operation: operation.slice(0, 64),
      result: 'denied',
      ...(requestId ? { requestId } : {}),
      details: { reason },
    });
    link.send({ t: 'outcome', call, outcome: { kind: 'refused', reason } } satisfies EngineMessage);
  }

  /**
   * A Reply whose calls go to the chat process: to the live request's handler (`replyId`) or, after
   * a restart of either side, to the adapter that made `address`. Fails while no chat process is
   * connected; the bus retries a result until one is.
   */
  reply(address: ReplyAddress, replyId?: string): Reply {
    let addr = address;
    const call = async (what: ReplyCall) => {
      const a = await this.calls.call(
        { t: 'reply', replyId, address: addr, do: what },
        this.opts?.callTimeoutMs ?? 60_000,
      );
      if (a.t !== 'reply-done') throw new Error('unexpected answer');
      if (!a.ok) throw new Error(a.error ?? 'the chat process could not reply');
      if (a.address) addr = a.address;
    };
    return {
      progress: (step, detail) => call({ method: 'progress', step, ...(detail ? { detail } : {}) }),
      result: (result) => call({ method: 'result', result: result as never }),
      refused: (reason) => call({ method: 'refused', reason }),
      confirm: (prompt) => call({ method: 'confirm', prompt }),
      window: (notice) => call({ method: 'window', notice }),
      address: () => addr,
    };
  }

  /**
   * The engine's notifier for a channel whose platform token lives in the chat process: each
   * delivery goes over the socket and counts only when the chat process acknowledges it (the
   * outbox keeps and retries it otherwise; the adapter posts idempotently per delivery id).
   */
  notifier(settings: ChannelSettings): ChannelAdapter {
    const name = settings.name ?? settings.type;
    return {
      name,
      type: settings.type,
      deliver: async (event: HvEvent, delivery) => {
        if (!this.connected)
          throw new DeliveryError('the chat process is not connected; retried when it is', 2000);
        let a: Answer;
        try {
          a = await this.calls.call(
            { t: 'deliver', channel: name, events: [event], digest: false, delivery },
            this.opts?.callTimeoutMs ?? 60_000,
          );
        } catch (e) {
          throw new DeliveryError(errorMessage(e), 2000);
        }
        if (a.t !== 'delivered') throw new DeliveryError('unexpected answer from the chat process');
        if (!a.ok)
          throw new DeliveryError(
            a.error?.message ?? 'delivery failed in the chat process',
            a.error?.retryAfterMs,
            a.error?.permanent ?? false,
          );
      },
    };
  }
}
