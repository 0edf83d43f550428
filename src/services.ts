import { closeSync, openSync, readFileSync } from 'node:fs';
import { AuditLog } from './audit.js';
import type { Config } from './config/schema.js';
import { HvError, isHvError } from './errors.js';
import { assertOpenFileTrusted } from './fs/trust.js';
import { type OpLog, openOpLog } from './log.js';
import type { NotificationHub } from './notify/hub.js';
import type { AdapterContext, ChannelAdapter, ChannelSettings, ChannelTypes } from './ports/channel.js';
import { ExecaRunner, type Runner } from './proc.js';
import { type StatePaths, statePaths } from './state.js';

/** What commands and the engine are given: injected, so tests use real parts on temp dirs. */
export interface Services {
  config: Config;
  runner: Runner;
  now: () => Date;
  paths: StatePaths;
  audit: AuditLog;
  opLog(name: string): OpLog;
  /** The notification hub with every configured channel (adapters load on first use). */
  hub(): Promise<NotificationHub>;
  /** Journal-style line for the daemon or stderr. */
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** The channel types (adapters/registry.ts) the composition root passed in. */
  channels: ChannelTypes;
  /** Read a secret file named in the config (trusted-file checks; never logged). */
  readSecret(path: string): string;
}

/**
 * Read a secret file (every `…File` key of the config). Refused (HvError 'unsafe-path') when another
 * user owns it or group/others can write it; used with a warning through `warn` when group or
 * others can read it.
 */
export function readSecret(path: string, warn?: (path: string) => void): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const { readableByOthers } = assertOpenFileTrusted('secret file', path, fd);
    if (readableByOthers) warn?.(path);
    return readFileSync(fd, 'utf8').trim();
  } catch (e) {
    if (isHvError(e)) throw e;
    throw new HvError(
      'secret-unreadable',
      `cannot read secret file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const warnedSecrets = new Set<string>();

/** Warn once per process that a secret file is readable by group or others (it is still used). */
export function warnReadableSecret(path: string, log: Services['log']): void {
  if (warnedSecrets.has(path)) return;
  warnedSecrets.add(path);
  log('warn', 'secret file is readable by group or others', { path, fix: `chmod go-r ${path}` });
}

export interface ServiceOptions {
  /** The channel types the hub opens adapters with (the composition root's adapters/registry.ts). */
  channels: ChannelTypes;
  runner?: Runner;
  now?: () => Date;
  log?: Services['log'];
  /**
   * The notifier to use for a channel instead of opening its adapter (the daemon: channels whose
   * token lives in the chat process are delivered through it); undefined: open the adapter.
   */
  notifierFor?: (channel: ChannelSettings) => ChannelAdapter | undefined;
}

export function createServices(config: Config, opts: ServiceOptions): Services {
  const now = opts.now ?? (() => new Date());
  const runner = opts.runner ?? new ExecaRunner();
  const log = opts.log ?? (() => {});
  const paths = statePaths(config);
  let hub: Promise<NotificationHub> | undefined;
  const services: Services = {
    config,
    runner,
    now,
    paths,
    audit: new AuditLog(paths.dir, config.host, now),
    opLog: (name) => openOpLog(config.paths.log, name, now),
    log,
    channels: opts.channels,
    readSecret: (p) => readSecret(p, (path) => warnReadableSecret(path, log)),
    hub() {
      const ctx: AdapterContext = { config, runner, now, readSecret: services.readSecret, log };
      // Loaded on first use: commands that notify nobody (status) never parse the hub.
      hub ??= import('./notify/build.js').then(({ buildHub }) =>
        buildHub(config, ctx, paths.dir, opts.channels, opts.notifierFor),
      );
      return hub;
    },
  };
  return services;
}
