import type { AnyCommand } from '../../commands/types.js';
import { HvError } from '../errors.js';

export interface ParsedArgs {
  command: string | undefined;
  json: boolean;
  config: string | undefined;
  yes: boolean;
  rest: string[];
}

/** Split global flags (`--json`, `--config FILE`, `--yes`) from the command and its own words. */
export function parseGlobal(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { command: undefined, json: false, config: undefined, yes: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--json') out.json = true;
    else if (a === '--yes' || a === '-y') out.yes = true;
    else if (a === '--config' || a.startsWith('--config=')) {
      const v = a.includes('=') ? a.slice('--config='.length) : argv[++i];
      if (!v) throw new HvError('usage', '--config needs a file path');
      out.config = v;
    } else if (out.command === undefined && !a.startsWith('-')) out.command = a;
    else out.rest.push(a);
  }
  return out;
}

/** Parse a command's own words (`--to 5`, `--allow-downgrade`, positionals) into its raw args. */
export function parseCommandArgs(cmd: AnyCommand, words: string[]): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (!w.startsWith('--')) {
      positionals.push(w);
      continue;
    }
    const [flag, inline] = w.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const type = cmd.flags[key];
    if (!type) {
      const allowed = Object.keys(cmd.flags).map(
        (f) => `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
      );
      throw new HvError(
        'usage',
        `unknown option --${flag} for "${cmd.name}"; ${allowed.length ? `allowed: ${allowed.join(', ')}` : 'it takes no options'}\nusage: ${cmd.usage}`,
      );
    }
    if (type === 'boolean') {
      if (inline !== undefined) throw new HvError('usage', `--${flag} takes no value\nusage: ${cmd.usage}`);
      raw[key] = true;
    } else {
      const v = inline ?? words[++i];
      if (v === undefined) throw new HvError('usage', `--${flag} needs a value\nusage: ${cmd.usage}`);
      raw[key] = v;
    }
  }
  const names = cmd.positionals ?? [];
  if (positionals.length > names.length)
    throw new HvError('usage', `unexpected argument "${positionals[names.length]}"\nusage: ${cmd.usage}`);
  positionals.forEach((p, i) => {
    raw[names[i] as string] = p;
  });
  return raw;
}

/** Validate raw args with the command's schema; exit 2 naming the argument. */
export function validateArgs(cmd: AnyCommand, raw: Record<string, unknown>): Record<string, unknown> {
  const r = cmd.args.safeParse(raw);
  if (r.success) return r.data as Record<string, unknown>;
  const msg = r.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`).join('; ');
  throw new HvError('usage', `${msg}\nusage: ${cmd.usage}`);
}
