import { z } from 'zod';
import { HV } from './cli-name.js';

/**
 * A command's arguments, derived from its zod schema alone, so that every front end (the CLI
 * parser and usage line, `hv help`, Slack's help, Discord's option list, email help) offers the
 * same arguments with no per-command code. This module knows commands only by shape: it imports
 * nothing from `commands/`.
 */

/** What a command declares about its arguments (a `Command` is one). */
export interface ArgsDeclaration {
  name: string;
  /** A zod object (possibly refined or with defaults) keyed by argument name (camelCase). */
  args: z.ZodTypeAny;
  /** Keys of `args` taken by position, in order (`hv schedule next EXPR`); the rest are `--flags`. */
  positionals?: readonly string[];
}

export type OptionKind = 'boolean' | 'integer' | 'number' | 'string';

/** One argument of a command. */
export interface CommandOption {
  /** The key in the args schema, e.g. `allowDowngrade`. */
  key: string;
  /** The name users type: `--allow-downgrade` on the CLI, `allow-downgrade:` on Discord. */
  name: string;
  kind: OptionKind;
  /** Taken by position on the CLI (`hv notify list`); also accepted as `--name value`. */
  positional: boolean;
  /** Neither optional nor defaulted. */
  required: boolean;
  /** From `.describe('…')`; a derived phrase when the schema has none. */
  description: string;
  /** The allowed values (enums, literals). */
  choices?: string[];
  /** Inclusive bounds of a number. */
  min?: number;
  max?: number;
  default?: unknown;
  /** The value's stand-in in a usage line: `N`, `EXPR`, `test|list|retry`. */
  placeholder: string;
}

/** `allowDowngrade` → `allow-downgrade`. */
export function optionName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `allow-downgrade` → `allowDowngrade`. */
export function optionKey(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

interface Unwrapped {
  inner: z.ZodTypeAny;
  required: boolean;
  default?: unknown;
  description?: string;
}

/** Strip optional/default/refinement/coercion wrappers down to the value's own type. */
function unwrap(schema: z.ZodTypeAny): Unwrapped {
  let s = schema;
  let required = true;
  let dflt: unknown;
  let description = s.description;
  for (;;) {
    description ??= s.description;
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) {
      required = false;
      s = s.unwrap();
    } else if (s instanceof z.ZodDefault) {
      required = false;
      dflt = s._def.defaultValue();
      s = s.removeDefault();
    } else if (s instanceof z.ZodCatch) s = s.removeCatch();
    else if (s instanceof z.ZodEffects) s = s.innerType();
    else if (s instanceof z.ZodBranded) s = s.unwrap();
    else if (s instanceof z.ZodPipeline) s = s._def.in;
    else if (s instanceof z.ZodLazy) s = s.schema;
    else break;
  }
  description ??= s.description;
  return { inner: s, required, ...(dflt === undefined ? {} : { default: dflt }), description };
}

/** The object schema under a command's `args` (refinements and defaults unwrapped). */
function argsShape(args: z.ZodTypeAny): Record<string, z.ZodTypeAny> {
  const { inner } = unwrap(args);
  return inner instanceof z.ZodObject ? (inner.shape as Record<string, z.ZodTypeAny>) : {};
}

function numberBounds(s: z.ZodNumber): { integer: boolean; min?: number; max?: number } {
  let integer = false;
  let min: number | undefined;
  let max: number | undefined;
  for (const c of s._def.checks) {
    if (c.kind === 'int') integer = true;
    else if (c.kind === 'min') min = c.inclusive ? c.value : c.value + (integer ? 1 : Number.EPSILON);
    else if (c.kind === 'max') max = c.inclusive ? c.value : c.value - (integer ? 1 : Number.EPSILON);
  }
  // An exclusive bound seen before `.int()` still lands on the next whole number.
  if (integer && min !== undefined) min = Math.ceil(min);
  if (integer && max !== undefined) max = Math.floor(max);
  return { integer, ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }) };
}

function option(key: string, schema: z.ZodTypeAny, positional: boolean): CommandOption {
  const u = unwrap(schema);
  const s = u.inner;
  const name = optionName(key);
  const base = {
    key,
    name,
    positional,
    required: u.required,
    ...(u.default === undefined ? {} : { default: u.default }),
  };
  let out: Omit<CommandOption, 'description'>;
  if (s instanceof z.ZodBoolean) out = { ...base, kind: 'boolean', placeholder: '' };
  else if (s instanceof z.ZodNumber) {
    const b = numberBounds(s);
    out = {
      ...base,
      kind: b.integer ? 'integer' : 'number',
      ...(b.min === undefined ? {} : { min: b.min }),
      ...(b.max === undefined ? {} : { max: b.max }),
      placeholder: 'N',
    };
  } else if (s instanceof z.ZodEnum || s instanceof z.ZodLiteral || s instanceof z.ZodNativeEnum) {
    const choices =
      s instanceof z.ZodEnum
        ? (s.options as string[])
        : s instanceof z.ZodLiteral
          ? [String(s.value)]
          : Object.values(s.enum as Record<string, string | number>)
              .filter((v) => typeof v === 'string')
              .map(String);
    out = { ...base, kind: 'string', choices, placeholder: choices.join('|') };
  } else out = { ...base, kind: 'string', placeholder: key.toUpperCase() };
  return { ...out, description: u.description ?? derivedDescription(out) };
}

/** A plain phrase for an argument whose schema has no `.describe()`. */
function derivedDescription(o: Omit<CommandOption, 'description'>): string {
  const words = optionName(o.key).replace(/-/g, ' ');
  if (o.kind === 'boolean') return words;
  if (o.choices) return `${words}: ${o.choices.join(', ')}`;
  return `${words} (${o.kind === 'string' ? 'text' : o.kind === 'integer' ? 'whole number' : 'number'})`;
}

/**
 * Every argument of a command, positionals first (in their order), then the flags as the schema
 * declares them.
 */
export function commandOptions(cmd: ArgsDeclaration): CommandOption[] {
  const shape = argsShape(cmd.args);
  const positionals = (cmd.positionals ?? []).filter((k) => k in shape);
  return [
    ...positionals.map((k) => option(k, shape[k] as z.ZodTypeAny, true)),
    ...Object.entries(shape)
      .filter(([k]) => !positionals.includes(k))
      .map(([k, s]) => option(k, s, false)),
  ];
}

/** How a usage line writes options: CLI words (`--to N`) or Discord's named options (`to:N`). */
export type UsageStyle = 'words' | 'named';

/** One option as a usage line writes it, without brackets. */
export function optionUsage(o: CommandOption, style: UsageStyle = 'words'): string {
  if (style === 'named') return `${o.name}:${o.kind === 'boolean' ? 'true' : o.placeholder}`;
  if (o.positional) return o.placeholder;
  return o.kind === 'boolean' ? `--${o.name}` : `--${o.name} ${o.placeholder}`;
}

/** What a usage line needs beyond the arguments. */
export interface UsageTarget extends ArgsDeclaration {
  /** Needs a confirmation: the CLI takes `--yes`. */
  confirm?: boolean;
}

/**
 * The usage line: `hv rollback [--to N] [--yes] [--json]`. `prog` is what precedes the command
 * name (`hv`, `/hv`); the CLI's global `--yes` and `--json` appear only in the words style.
 */
export function usageLine(cmd: UsageTarget, prog = HV, style: UsageStyle = 'words'): string {
  const parts = [prog, cmd.name];
  for (const o of commandOptions(cmd)) {
    const u = optionUsage(o, style);
    parts.push(o.required ? u : `[${u}]`);
  }
  if (style === 'words' && !prog.startsWith('/')) {
    if (cmd.confirm) parts.push('[--yes]');
    parts.push('[--json]');
  }
  return parts.join(' ');
}

/** A command as help lists it. */
export interface HelpEntry extends UsageTarget {
  summary: string;
}

/**
 * The help text every front end shows (`hv help`, `/hv help` in Slack and Discord, email): each
 * command with its summary, and for a command with arguments its usage line and one line per
 * argument with its description.
 */
export function helpText(cmds: readonly HelpEntry[], prog = HV, style: UsageStyle = 'words'): string {
  const width = Math.max(0, ...cmds.map((c) => c.name.length));
  const lines = ['Commands:'];
  for (const c of cmds) {
    lines.push(
      `  ${c.name.padEnd(width)}  ${c.summary}${c.confirm ? ' (admin, asks for confirmation)' : ''}`,
    );
    const options = commandOptions(c);
    if (options.length === 0) continue;
    lines.push(`      ${usageLine(c, prog, style)}`);
    const shown = options.map((o) => optionUsage(o, style));
    const w = Math.max(...shown.map((s) => s.length));
    options.forEach((o, i) => {
      lines.push(`        ${(shown[i] as string).padEnd(w)}  ${o.description}`);
    });
  }
  return lines.join('\n');
}
