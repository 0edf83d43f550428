import type { ExitCode } from '../errors.js';

/** The `status` field of `--json` output and of chat results (SPEC "CLI"). */
export type ResultStatus =
  | 'ok'
  | 'up-to-date'
  | 'update-available'
  | 'passed'
  | 'failed'
  | 'applied'
  | 'refused'
  | 'rolled-back'
  | 'busy'
  | 'error';

/** What a command hands back to whichever front end asked (CLI, chat, email). */
export interface CommandResult {
  status: ResultStatus;
  exitCode: ExitCode;
  /** Human summary, a few lines of plain text. */
  message: string;
  /** Facts for `--json` and rich chat messages. */
  data: Record<string, unknown>;
  /** Facts for the outcome's audit record (what changed: generations, revisions, a downgrade). */
  audit?: Record<string, unknown>;
}
