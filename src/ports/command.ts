import type { z } from 'zod';
import type { Actor } from '../audit.js';
import type { Config, Role } from '../config/schema.js';
import type { ExitCode } from '../errors.js';
import type { Services } from '../services.js';
import type { CommandResult } from './result.js';

export type { CommandResult, ResultStatus } from './result.js';

/** Progress of a long operation, rendered by the front end (terminal line, chat thread edit). */
export interface Progress {
  step(name: string, detail?: string): void;
}

export interface CommandContext {
  config: Config;
  actor: Actor;
  services: Services;
  progress: Progress;
  /** The actor explicitly confirmed (CLI `--yes`, a chat confirm button). */
  confirmed: boolean;
  requestId?: string;
  /** The `--config` the CLI was given (the daemon reloads from it on SIGHUP). */
  configFlag?: string;
}

/** What a preview may read: the config and the services (paths, clock); it changes nothing. */
export type PreviewContext = Pick<CommandContext, 'config' | 'services'>;

/** A higher role that some arguments need, and the words that name those arguments. */
export interface ArgRole {
  role: Role;
  /** What needs it, as the user typed it, e.g. `--allow-downgrade`. */
  what: string;
}

/**
 * A command, defined once and served by the CLI, chat and email alike. `args` declares and
 * validates its arguments (flags by name, positionals in order).
 */
export interface Command<A = Record<string, unknown>> {
  name: string;
  summary: string;
  /** Minimum chat role; the CLI is guarded by unix permissions (root). */
  role: Role;
  /** Needs an explicit confirmation before it runs (system-upgrade, rollback). */
  confirm?: boolean;
  /** Takes the host's operation lock. */
  exclusive?: boolean;
  /** Only from the shell (daemon, audit verification): chat and email refuse it. */
  cliOnly?: boolean;
  /** Skips config checks that need heavy modules (the schedule's meaning): read-only, fast commands. */
  fastStart?: boolean;
  /** Runs without root even when allowNonRoot is false (pure computations). */
  unprivileged?: boolean;
  /**
   * Runs outside the engine (no state dir, lock, recovery or audit; any user): `email-intake`, which
   * an MTA runs as the chat user. Any failure, config included, exits with `failureExit`.
   */
  standalone?: { failureExit: ExitCode };
  /**
   * Keys of `args` taken by position, in order (`hv schedule next EXPR`); every other key is a
   * `--flag`. Front ends derive everything else from `args` (src/command-options.ts).
   */
  positionals?: string[];
  /**
   * The arguments, declared once: a zod object keyed by camelCase name (`allowDowngrade` is
   * `--allow-downgrade`). Booleans are flags without a value; numbers, strings and enums take one;
   * `.describe()` is the help text. The CLI parser, usage line, `hv help` and the chat option lists
   * are derived from it.
   */
  args: z.ZodType<A, z.ZodTypeDef, unknown>;
  /**
   * A higher chat role than `role` that these (validated) arguments need, e.g. `admin` for
   * `upgrade-test --allow-downgrade`; undefined when `role` suffices. The bus enforces it.
   */
  roleFor?(args: A): ArgRole | undefined;
  /**
   * What running it would change (generations, versions, revisions; DOWNGRADE first), shown by
   * every confirmation prompt: the terminal's and chat's. Read-only; undefined when there is
   * nothing to say.
   */
  preview?(ctx: PreviewContext, args: A): Promise<string | undefined>;
  run(ctx: CommandContext, args: A): Promise<CommandResult>;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds commands of every argument type
export type AnyCommand = Command<any>;

/** The commands a process serves: the composition roots pass commands/index.ts `commandRegistry`. */
export interface CommandRegistry {
  findCommand(name: string): AnyCommand | undefined;
  /** Every command, in registration order (help, the bus and chat front ends list these). */
  listCommands(): AnyCommand[];
}
