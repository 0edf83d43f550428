/**
 * The chat process's side: it hosts the network-facing adapters (Slack, Discord, email intake) and
 * gives them a `CommandBus` whose every call goes to the engine (`RemoteBus`); it answers the
 * engine's reply and delivery calls with those adapters. It decides nothing: authorisation,
 * deduplication, confirmation and signature checks happen in the engine.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Actor } from '../audit.js';
import type {
  CommandBus,
  CommandRequest,
  Evidence,
  Reply,
  ServedCommand,
  SubmitOutcome,
} from '../bus/types.js';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { HvEvent } from '../events.js';
import {
  type AdapterContext,
  type ChannelAdapter,
  type ChannelTypes,
  DeliveryError,
} from '../ports/channel.js';
import type { CommandRegistry } from '../ports/command.js';
import type { Runner } from '../proc.js';
import { decode, EngineMessage, PROTOCOL_VERSION } from './protocol.js';
import { chatSecrets } from './secrets.js';
import { Calls, type Link } from './transport.js';

type Log = AdapterContext['log'];
type Answer = Extract<EngineMessage, { t: 'outcome' | 'verified' }>;
type Welcome = Extract<EngineMessage, { t: 'welcome' }>;

const CALL_TIMEOUT_MS = 30_000;
/** A live request's Reply is kept this long for the engine's calls; after that, replyFor(address). */
const LIVE_REPLY_MS = 6 * 60 * 60 * 1000;

export interface ChatClientOptions {
  link: Link;
  channels: ChannelTypes;
  commands: CommandRegistry;
  runner: Runner;
  log: Log;
  /** systemd's LoadCredential dir: secrets by credential id (else they come in the welcome). */
  credentialsDir?: string;
}

export class ChatClient {
  private readonly calls: Calls<Answer>;
  private readonly live = new Map<string, { reply: Reply; at: number }>();
  private adapters: { adapter: ChannelAdapter; intake: boolean; notifier: boolean }[] = [];
  private welcomed: ((w: Welcome) => void) | undefined;
  private markReady: () => void = () => {};
  /** Resolves once every adapter was opened (and started, where it takes commands). */
  private readonly ready = new Promise<void>((r) => {
    this.markReady = r;
  });
  config: Config | undefined;

  constructor(private readonly opts: ChatClientOptions) {
    this.calls = new Calls<Answer>(() => opts.link);
    opts.link.onMessage((text) => this.onMessage(text));
    opts.link.onClose((reason) => this.calls.failAll(`engine link closed: ${reason}`));
  }

  /** Say hello, take the welcome, open the adapters and start the ones that take commands. */
  async start(): Promise<void> {
    const welcome = new Promise<Welcome>((resolve, reject) => {
      this.welcomed = resolve;
      this.opts.link.onClose((reason) => reject(new Error(`engine closed the link: ${reason}`)));
    });
    this.opts.link.send({ t: 'hello', v: PROTOCOL_VERSION, pid: process.pid });
    const w = await welcome;
    const config = parseConfig(w.config, this.opts.channels, 'config from the engine');
    this.config = config;
    const secrets = this.secretReader(w, config);
    const ctx: AdapterContext = {
      config,
      runner: this.opts.runner,
      now: () => new Date(),
      readSecret: secrets,
      log: this.opts.log,
    };
    const bus = this.remoteBus();
    for (const c of w.channels) {
      const name = String(c.settings.name ?? c.settings.type);
      const settings = config.notify.channels.find((s) => (s.name ?? s.type) === name);
      const type = settings && this.opts.channels.get(settings.type);
      if (!settings || !type) continue;
      try {
        const adapter = await type.open(settings, ctx);
        this.adapters.push({ adapter, intake: c.intake, notifier: c.notifier });
        if (c.intake && adapter.start) {
          await adapter.start({ bus, connected: (detail) => this.connected(name, detail) });
          this.opts.log('info', 'chat adapter connected', { channel: name, type: settings.type });
        }
      } catch (e) {
        this.opts.log('error', 'chat adapter failed to start; check its token and settings', {
          channel: name,
          error: errorMessage(e),
        });
      }
    }
    this.markReady();
    setInterval(() => this.prune(), 60_000).unref();
  }

  async stop(): Promise<void> {
    for (const { adapter } of this.adapters.splice(0).reverse()) {
      try {
        await adapter.stop?.();
      } catch (e) {
        this.opts.log('warn', 'chat adapter failed to stop', {
          channel: adapter.name,
          error: errorMessage(e),
        });
      }
    }
  }

  /** Secrets by the path the config names: from the welcome, or from systemd's credentials dir. */
  private secretReader(w: Welcome, config: Config): (path: string) => string {
    const byPath = new Map(Object.entries(w.secrets));
    const dir = this.opts.credentialsDir;
    const ids = new Map<string, string>();
    for (const ch of config.notify.channels)
      for (const s of chatSecrets(ch, this.opts.channels)) ids.set(s.path, s.id);
    return (path) => {
      const given = byPath.get(path);
      if (given !== undefined) return given;
      const id = ids.get(path);
      if (dir && id) {
        try {
          return readFileSync(join(dir, id), 'utf8').trim();
        } catch (e) {
          throw new Error(
            `cannot read credential ${id} (${(e as NodeJS.ErrnoException).code ?? e}); LoadCredential=${id}:${path} is missing`,
          );
        }
      }
      throw new Error(`the engine did not hand over the secret ${path} (is it readable by root?)`);
    };
  }

  /** Tell the engine a channel has a fresh platform connection (chat evidence for a window). */
  private connected(channel: string, detail: string): void {
    if (this.opts.link.closed) return;
    this.opts.link.send({
      t: 'connected',
      channel,
      at: new Date().toISOString(),
      detail: detail.slice(0, 500),
    });
  }

  /** A confirmation window opened: every intake adapter drops its connection and makes a new one. */
  private async onReconnect(window: string): Promise<void> {
    await this.ready;
    this.opts.log('info', 'reconnecting chat adapters for a confirmation window', { window });
    await Promise.all(
      this.adapters
        .filter((a) => a.intake && a.adapter.reconnect)
        .map(async ({ adapter }) => {
          try {
            await adapter.reconnect?.();
          } catch (e) {
            this.opts.log('warn', 'chat adapter reconnect failed', {
              channel: adapter.name,
              error: errorMessage(e),
            });
          }
        }),
    );
  }

  private prune(): void {
    const cutoff = Date.now() - LIVE_REPLY_MS;
    for (const [id, l] of this.live) if (l.at < cutoff) this.live.delete(id);
  }

  private onMessage(text: string): void {
    const msg = decode(EngineMessage, text);
    if (typeof msg === 'string') {
      this.opts.log('warn', 'engine message refused', { reason: msg.slice(0, 300) });
      return;
    }
    switch (msg.t) {
      case 'welcome':
        this.welcomed?.(msg);
        this.welcomed = undefined;
        return;
      case 'outcome':
      case 'verified':
        this.calls.answer(msg);
        return;
      case 'reply':
        void this.onReply(msg);
        return;
      case 'deliver':
        void this.onDeliver(msg);
        return;
      case 'reconnect':
        void this.onReconnect(msg.window);
        return;
    }
  }

  private replyOf(replyId: string | undefined, address: { channel: string; data: Record<string, unknown> }) {
    const live = replyId ? this.live.get(replyId)?.reply : undefined;
    if (live) return live;
    const owner = this.adapters.find((a) => a.adapter.name === address.channel);
    return owner?.adapter.replyFor?.(address);
  }

  private async onReply(msg: Extract<EngineMessage, { t: 'reply' }>): Promise<void> {
    const { link } = this.opts;
    await this.ready;
    const reply = this.replyOf(msg.replyId, msg.address);
    if (!reply) {
      link.send({
        t: 'reply-done',
        call: msg.call,
        ok: false,
        error: `no adapter for ${msg.address.channel}`,
      });
      return;
    }
    try {
      const d = msg.do;
      if (d.method === 'progress') await reply.progress(d.step, d.detail);
      else if (d.method === 'result') await reply.result(d.result as never);
      else if (d.method === 'refused') await reply.refused(d.reason);
      else if (d.method === 'window') await reply.window?.(d.notice);
      else await reply.confirm(d.prompt);
      const address = reply.address?.();
      link.send({ t: 'reply-done', call: msg.call, ok: true, ...(address ? { address } : {}) });
    } catch (e) {
      link.send({ t: 'reply-done', call: msg.call, ok: false, error: errorMessage(e).slice(0, 2000) });
    }
  }

  private async onDeliver(msg: Extract<EngineMessage, { t: 'deliver' }>): Promise<void> {
    const { link } = this.opts;
    // The engine may deliver as soon as the link is up; the adapters open a moment later.
    await this.ready;
    const owner = this.adapters.find((a) => a.notifier && a.adapter.name === msg.channel);
    const events = msg.events as unknown as HvEvent[];
    try {
      if (!owner?.adapter.deliver) throw new DeliveryError(`no notifier for ${msg.channel}`);
      if (msg.digest && owner.adapter.sendDigest) await owner.adapter.sendDigest(events, msg.delivery);
      else for (const e of events) await owner.adapter.deliver(e, msg.delivery);
      link.send({ t: 'delivered', call: msg.call, ok: true });
    } catch (e) {
      const d = e instanceof DeliveryError ? e : undefined;
      this.opts.log('warn', 'notification delivery failed', { channel: msg.channel, error: errorMessage(e) });
      link.send({
        t: 'delivered',
        call: msg.call,
        ok: false,
        error: {
          message: errorMessage(e).slice(0, 2000),
          ...(d?.retryAfterMs !== undefined ? { retryAfterMs: d.retryAfterMs } : {}),
          permanent: d?.permanent ?? false,
        },
      });
    }
  }

  /** The bus the adapters see: each call goes to the engine, which decides. */
  private remoteBus(): CommandBus {
    const hold = (reply: Reply): string => {
      const id = randomBytes(9).toString('base64url');
      this.live.set(id, { reply, at: Date.now() });
      return id;
    };
    const outcomeOf = async (message: object): Promise<SubmitOutcome> => {
      const a = await this.calls.call(message, CALL_TIMEOUT_MS);
      if (a.t !== 'outcome') throw new Error('unexpected answer from the engine');
      if (a.error) throw new Error(a.error);
      return (a.outcome ?? { kind: 'duplicate' }) as SubmitOutcome;
    };
    const addressOf = (reply: Reply) => {
      const address = reply.address?.();
      if (!address) throw new Error('a confirmation needs a reply with an address');
      return address;
    };
    const commands = this.opts.commands;
    return {
      commands: (): readonly ServedCommand[] => commands.listCommands().filter((c) => !c.cliOnly),
      submit: (req: CommandRequest, reply: Reply) =>
        outcomeOf({ t: 'submit', replyId: hold(reply), request: req }),
      confirm: (token: string, actor: Actor, reply: Reply, evidence?: Evidence) =>
        outcomeOf({
          t: 'confirm',
          replyId: hold(reply),
          token,
          actor,
          replyTo: addressOf(reply),
          ...(evidence ? { evidence } : {}),
        }),
      cancel: async (token: string, actor: Actor, reply?: Reply, evidence?: Evidence) => {
        if (!reply) throw new Error('a cancel needs a reply');
        await outcomeOf({
          t: 'cancel',
          replyId: hold(reply),
          token,
          actor,
          replyTo: addressOf(reply),
          ...(evidence ? { evidence } : {}),
        });
      },
      keep: (token: string, actor: Actor, reply: Reply, evidence?: Evidence) =>
        outcomeOf({
          t: 'keep',
          replyId: hold(reply),
          token,
          actor,
          replyTo: addressOf(reply),
          ...(evidence ? { evidence } : {}),
        }),
      verify: async (channel: string, evidence: Evidence) => {
        const a = await this.calls.call({ t: 'verify', channel, evidence }, CALL_TIMEOUT_MS);
        return a.t === 'verified' && a.ok;
      },
    };
  }
}
