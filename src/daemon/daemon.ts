import type { Actor } from '../audit.js';
import { HV } from '../cli-name.js';
import { checkSchedule, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { execute } from '../execute.js';
import { acquireLock, type Lock } from '../lock.js';
import type { ChannelTypes } from '../ports/channel.js';
import type { AnyCommand, Progress } from '../ports/command.js';
import { isCatchUpDue, parseSchedule, ScheduleTimer, type TimerHost } from '../schedule/index.js';
import { createServices, type ServiceOptions, type Services } from '../services.js';
import { readJson, statePaths } from '../state.js';
import type { JournalLog } from './journal.js';

/** A part of the daemon with a lifetime: scheduler, delivery loop, chat intake. */
export interface DaemonComponent {
  readonly name: string;
  start(services: Services): Promise<void>;
  stop(): Promise<void>;
}

/** Extra components (delivery loop, chat adapters) are contributed by the layers that own them. */
export type ComponentFactory = (services: Services, log: JournalLog) => Promise<DaemonComponent[]>;

export interface DaemonOptions {
  configFlag: string | undefined;
  env: NodeJS.ProcessEnv;
  log: JournalLog;
  /** The channel types (adapters/registry.ts), passed in by the daemon's composition root. */
  channels: ChannelTypes;
  /** The command the schedule runs (`check-updates`), passed in by the composition root. */
  scheduledCommand: AnyCommand;
  components?: ComponentFactory[];
  /** See ServiceOptions.notifierFor: chat channels are delivered through the chat process. */
  notifierFor?: ServiceOptions['notifierFor'];
  /** How long SIGTERM waits for a running in-process step before exiting anyway. */
  stopGraceMs?: number;
  /** The clock and timers the schedule runs on (default: the real ones); tests pass a fake. */
  timers?: TimerHost;
}

const DAEMON_ACTOR: Actor = { channel: 'daemon', id: 'scheduler', display: `${HV} daemon (schedule)` };

interface LastCheck {
  at: string;
  ok: boolean;
  lastSuccessAt?: string;
}

/**
 * The random delay that spreads hosts (systemd's RandomizedDelaySec), capped at a tenth of the
 * schedule's period: an hour's spread suits a monthly check but would swallow an every-minute one.
 */
export function spreadMs(randomizedDelaySec: number, periodMs: number): number {
  return Math.min(randomizedDelaySec * 1000, Math.floor(periodMs / 10));
}

/** When the last check succeeded, from `<state>/last-check.json`. */
export function lastSuccess(config: Config): Date | undefined {
  const last = readJson<LastCheck>(statePaths(config).lastCheck);
  const at = last?.ok ? last.at : last?.lastSuccessAt;
  return at ? new Date(at) : undefined;
}

/**
 * `hv daemon`: one per state dir. Runs the scheduled update check (a timer armed for the next
 * instant of `Schedule.next`, randomized delay, catch-up of missed runs), hosts the delivery loop
 * and chat adapters, reloads on SIGHUP, and stops cleanly on SIGTERM.
 */
export class Daemon {
  private config!: Config;
  /** The file the config came from (null: built-in defaults); detached operations load it too. */
  configPath: string | null = null;
  private services!: Services;
  private lock: Lock | undefined;
  private timer: ScheduleTimer | undefined;
  private components: DaemonComponent[] = [];
  private running: Promise<unknown> | undefined;
  private stopping = false;
  private readonly log: JournalLog;

  constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log;
  }

  /** Start everything; throws HvError (busy, config-invalid) when it cannot. */
  async start(): Promise<void> {
    const loaded = loadConfig(this.opts.configFlag, this.opts.env, this.opts.channels);
    await checkSchedule(loaded.config, loaded.path ? `config ${loaded.path}` : 'config');
    this.config = loaded.config;
    this.configPath = loaded.path;
    this.services = this.createServices(this.config);
    this.lock = acquireLock(this.services.paths.dir, 'daemon', `pid ${process.pid}`, 'daemon.lock');
    await this.startParts();
    this.log('info', 'daemon started', {
      host: this.config.host,
      schedule: this.config.schedule,
      pid: process.pid,
    });
  }

  private async startParts(): Promise<void> {
    const schedule = parseSchedule(this.config.schedule);
    const delayMs = spreadMs(this.config.randomizedDelaySec, schedule.periodMs);
    // The instants come from the same `Schedule.next` as `hv schedule next` and the catch-up.
    this.timer = new ScheduleTimer(schedule, (instant) => void this.scheduledCheck('schedule', instant), {
      spreadMs: delayMs,
      timers: this.opts.timers,
      log: this.log,
    });
    const armed = this.timer.start();
    this.log('info', 'schedule armed', {
      cron: schedule.cron,
      next: armed?.instant.toISOString(),
      firesAt: armed ? new Date(armed.dueAt).toISOString() : undefined,
      randomizedDelaySec: this.config.randomizedDelaySec,
      effectiveDelaySec: Math.round(delayMs / 1000),
    });
    for (const factory of this.opts.components ?? []) {
      for (const c of await factory(this.services, this.log)) {
        try {
          await c.start(this.services);
          this.components.push(c);
          this.log('info', 'component started', { component: c.name });
        } catch (e) {
          this.log('error', 'component failed to start', { component: c.name, error: errorMessage(e) });
        }
      }
    }
    // Persistent=true: a run missed while the daemon was down happens now.
    const last = lastSuccess(this.config);
    if (isCatchUpDue(last, schedule, this.services.now())) {
      this.log('info', 'missed a scheduled check; checking now', {
        lastSuccess: last?.toISOString() ?? 'never',
      });
      void this.scheduledCheck('catch-up');
    }
  }

  private async stopParts(): Promise<void> {
    this.timer?.stop();
    this.timer = undefined;
    for (const c of this.components.reverse()) {
      try {
        await c.stop();
      } catch (e) {
        this.log('warn', 'component failed to stop', { component: c.name, error: errorMessage(e) });
      }
    }
    this.components = [];
  }

  private scheduledCheck(reason: string, instant?: Date): Promise<unknown> {
    if (this.stopping) return Promise.resolve();
    if (this.running) {
      this.log('info', 'check skipped: one is already running', { reason });
      return this.running;
    }
    this.log('info', 'scheduled check starting', { reason, instant: instant?.toISOString() });
    const progress: Progress = {
      step: (name, detail) => this.log('info', 'check step', { step: name, detail }),
    };
    const services = this.services;
    this.running = execute(
      this.opts.scheduledCommand,
      {},
      { config: this.config, actor: DAEMON_ACTOR, services, progress, confirmed: false },
    )
      .then((r) =>
        this.log(r.status === 'error' || r.status === 'busy' ? 'warn' : 'info', 'scheduled check finished', {
          reason,
          status: r.status,
          message: r.message.split('\n')[0],
          next: this.timer?.armed?.instant.toISOString(),
        }),
      )
      .catch((e) => this.log('error', 'scheduled check crashed', { reason, error: errorMessage(e) }))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** SIGHUP: load the config again; keep the old one when the new one is invalid. */
  async reload(): Promise<void> {
    let next: Config;
    try {
      const loaded = loadConfig(this.opts.configFlag, this.opts.env, this.opts.channels);
      await checkSchedule(loaded.config, loaded.path ? `config ${loaded.path}` : 'config');
      next = loaded.config;
    } catch (e) {
      this.log('error', 'reload refused: invalid config; keeping the old one', { error: errorMessage(e) });
      return;
    }
    if (next.paths.state !== this.config.paths.state) {
      this.log('error', 'reload refused: paths.state cannot change while running; restart the daemon', {});
      return;
    }
    await this.stopParts();
    this.config = next;
    this.services = this.createServices(next);
    await this.startParts();
    this.log('info', 'config reloaded', { schedule: next.schedule });
  }

  private createServices(config: Config): Services {
    const timers = this.opts.timers;
    return createServices(config, {
      channels: this.opts.channels,
      log: this.log,
      now: timers ? () => new Date(timers.now()) : undefined,
      notifierFor: this.opts.notifierFor,
    });
  }

  /** SIGTERM: take no new work, let a running step finish (bounded), release the lock. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log('info', 'stopping', {});
    await this.stopParts();
    if (this.running) {
      const grace = this.opts.stopGraceMs ?? 7000;
      const done = await Promise.race([
        this.running.then(() => true),
        new Promise((r) => setTimeout(() => r(false), grace).unref()),
      ]);
      if (!done)
        this.log('warn', 'a check was still running at stop; its lock is released with this process', {
          graceMs: grace,
        });
    }
    this.lock?.release();
    this.log('info', 'stopped', {});
  }
}
