/**
 * Exit codes of the CLI contract (SPEC "CLI"). Commands map their outcome onto these.
 */
export const Exit = {
  ok: 0,
  failed: 1,
  usage: 2,
  refused: 3,
  busy: 4,
  /** sysexits EX_DATAERR: `email-intake` got something that is not a mail message (the MTA bounces it). */
  notMessage: 65,
  /** sysexits EX_TEMPFAIL: `email-intake` could not queue the message (the MTA retries later). */
  tryLater: 75,
  updateAvailable: 100,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** Stable error codes; the message tells the admin what to do next. */
export type HvErrorCode =
  | 'usage'
  | 'config-invalid'
  | 'config-unreadable'
  | 'not-root'
  /** A file or dir another user could have written (src/fs/trust.ts). */
  | 'unsafe-path'
  | 'busy'
  | 'flake-lock-missing'
  | 'flake-lock-invalid'
  | 'input-missing'
  | 'input-pinned'
  | 'upstream-unreachable'
  | 'nix-failed'
  | 'refused'
  | 'secret-unreadable'
  /**
   * A persisted record that cannot be read or does not match its schema (src/state.ts). Exit 3 for
   * every command: hv refuses to act on a record it cannot trust, before changing anything.
   */
  | 'state-corrupt'
  | 'adapter-failed'
  | 'internal';

const exitFor: Record<HvErrorCode, ExitCode> = {
  usage: Exit.usage,
  'config-invalid': Exit.usage,
  'config-unreadable': Exit.usage,
  'not-root': Exit.usage,
  'unsafe-path': Exit.usage,
  busy: Exit.busy,
  'flake-lock-missing': Exit.failed,
  'flake-lock-invalid': Exit.failed,
  'input-missing': Exit.failed,
  'input-pinned': Exit.failed,
  'upstream-unreachable': Exit.failed,
  'nix-failed': Exit.failed,
  refused: Exit.refused,
  'secret-unreadable': Exit.failed,
  'state-corrupt': Exit.refused,
  'adapter-failed': Exit.failed,
  internal: Exit.failed,
};

/** An error with a stable code and an admin-facing message (what is wrong, what to do). */
export class HvError extends Error {
  readonly code: HvErrorCode;
  readonly exitCode: ExitCode;
  readonly details: Record<string, unknown>;

  constructor(code: HvErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'HvError';
    this.code = code;
    this.exitCode = exitFor[code];
    this.details = details;
  }
}

export function isHvError(e: unknown): e is HvError {
  return e instanceof HvError;
}

/** The message of any thrown value, for logs and results. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
