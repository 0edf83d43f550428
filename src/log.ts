import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDir } from './fs/atomic.js';

export type Fields = Record<string, unknown>;

/** An operation's log: `<log>/<name>.log`, one line per step; fixed messages, details as fields. */
export interface OpLog {
  readonly file: string;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Raw output of a tool (build, activation), indented under the current step. */
  output(text: string): void;
}

function fmt(fields: Fields | undefined): string {
  if (!fields) return '';
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s|"/.test(v) ? v : JSON.stringify(v)}`)
    .join('');
}

export function openOpLog(logDir: string, name: string, now: () => Date = () => new Date()): OpLog {
  const file = join(logDir, `${name}.log`);
  let ready = false;
  const write = (line: string) => {
    try {
      if (!ready) {
        makeDir(logDir, 0o700);
        ready = true;
      }
      appendFileSync(file, line, { mode: 0o600 });
    } catch {
      // logging must never break an operation
    }
  };
  const line = (level: string) => (msg: string, fields?: Fields) =>
    write(`${now().toISOString()} ${level} ${msg}${fmt(fields)}\n`);
  return {
    file,
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    output(text: string) {
      if (!text) return;
      write(`${text.replace(/\n$/, '').replace(/^/gm, '    | ')}\n`);
    },
  };
}
