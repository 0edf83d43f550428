import { readFileSync } from 'node:fs';
import type { AdapterContext } from '../adapters/types.js';
import { AuditLog } from './audit.js';
import type { Config } from './config/schema.js';
import { HvError } from './errors.js';
import { type OpLog, openOpLog } from './log.js';
import type { NotificationHub } from './notify/hub.js';
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
}

export function readSecret(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new HvError(
      'secret-unreadable',
      `cannot read secret file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    );
  }
}

export interface ServiceOptions {
  runner?: Runner;
  now?: () => Date;
  log?: Services['log'];
}

export function createServices(config: Config, opts: ServiceOptions = {}): Services {
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
    hub() {
      const ctx: AdapterContext = { config, runner, now, readSecret, log };
      // Loaded on first use: commands that notify nobody (status) never parse the hub.
      hub ??= import('./notify/build.js').then(({ buildHub }) => buildHub(config, ctx, paths.dir));
      return hub;
    },
  };
  return services;
}
