import {
  type CommandOption,
  commandOptions,
  optionName,
  type UsageTarget,
  usageLine,
} from './command-options.js';
import { HvError } from './errors.js';

// A command's own words (`--to 5`, `--allow-downgrade`, positionals) → validated arguments, the same
// for every front end: the CLI, chat (the bus) and email.

/** Parse a command's own words (`--to 5`, `--allow-downgrade`, positionals) into its raw args. */
export function parseCommandArgs(cmd: UsageTarget, words: string[]): Record<string, unknown> {
  const options = commandOptions(cmd);
  const usage = `\nusage: ${usageLine(cmd)}`;
  const raw: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (!w.startsWith('--')) {
      positionals.push(w);
      continue;
    }
    const [flag, inline] = w.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    // A positional may also be named (`--action list`): what Discord's named options send.
    const o = options.find((x) => x.name === flag);
    if (!o) {
      const allowed = options.filter((x) => !x.positional).map((x) => `--${x.name}`);
      throw new HvError(
        'usage',
        `unknown option --${flag} for "${cmd.name}"; ${allowed.length ? `allowed: ${allowed.join(', ')}` : 'it takes no options'}${usage}`,
      );
    }
    if (o.kind === 'boolean') {
      if (inline !== undefined) throw new HvError('usage', `--${flag} takes no value${usage}`);
      raw[o.key] = true;
    } else {
      const v = inline ?? words[++i];
      if (v === undefined) throw new HvError('usage', `--${flag} needs a value${usage}`);
      raw[o.key] = typed(o, v);
    }
  }
  const slots = options.filter((o) => o.positional && !(o.key in raw));
  if (positionals.length > slots.length)
    throw new HvError('usage', `unexpected argument "${positionals[slots.length]}"${usage}`);
  positionals.forEach((p, i) => {
    const o = slots[i] as CommandOption;
    raw[o.key] = typed(o, p);
  });
  return raw;
}

/** A number-typed option's word as a number when it is one; anything else is left to the schema. */
function typed(o: CommandOption, v: string): unknown {
  if ((o.kind === 'integer' || o.kind === 'number') && /^-?\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  return v;
}

/** Validate raw args with the command's schema; exit 2 naming the argument. */
export function validateArgs(cmd: UsageTarget, raw: Record<string, unknown>): Record<string, unknown> {
  const r = cmd.args.safeParse(raw);
  if (r.success) return r.data as Record<string, unknown>;
  const msg = r.error.issues
    .map(
      (i) =>
        `${i.path.map((p) => (typeof p === 'string' ? optionName(p) : p)).join('.') || 'arguments'}: ${i.message}`,
    )
    .join('; ');
  throw new HvError('usage', `${msg}\nusage: ${usageLine(cmd)}`);
}
