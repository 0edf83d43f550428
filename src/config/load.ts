import { closeSync, openSync, readFileSync } from 'node:fs';
import type { ZodIssue } from 'zod';
import { HvError, isHvError } from '../errors.js';
import { assertOpenFileTrusted } from '../fs/trust.js';
import type { ChannelSchemas } from './fields.js';
import { type Config, configSchema } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/hv/config.json';

export interface LoadedConfig {
  config: Config;
  /** The file it came from, or null when built-in defaults apply. */
  path: string | null;
}

/** `--config`, else `$HV_CONFIG`, else /etc/hv/config.json. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.HV_CONFIG ?? DEFAULT_CONFIG_PATH;
}

function keyPath(path: (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out || '(top level)';
}

/** One line per problem, each naming the key path and what is allowed. */
export function formatIssues(issues: ZodIssue[]): string {
  return issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') {
        const where = keyPath(i.path);
        return i.keys.map((k) => `${where === '(top level)' ? k : `${where}.${k}`}: unknown key`).join('\n');
      }
      if (i.code === 'invalid_enum_value')
        return `${keyPath(i.path)}: ${JSON.stringify(i.received)} is not allowed; must be one of ${i.options.join(', ')}`;
      if (i.code === 'invalid_type')
        return `${keyPath(i.path)}: ${i.received === 'undefined' ? 'is required' : `must be ${i.expected}, got ${i.received}`}`;
      return `${keyPath(i.path)}: ${i.message}`;
    })
    .join('\n');
}

const schemas = new WeakMap<ChannelSchemas, ReturnType<typeof configSchema>>();

/**
 * Validate a parsed JSON value against the config schema with these channel types (the composition
 * root's adapters/registry.ts); throws HvError('config-invalid') naming every offending key.
 */
export function parseConfig(raw: unknown, channelTypes: ChannelSchemas, source = 'config'): Config {
  const schema = schemas.get(channelTypes) ?? configSchema(channelTypes);
  schemas.set(channelTypes, schema);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new HvError('config-invalid', `invalid ${source}:\n${formatIssues(parsed.error.issues)}`);
  }
  return parsed.data;
}

/**
 * Load and validate the config file; built-in defaults when the default path does not exist.
 * A config file another user owns or can write is refused (HvError 'unsafe-path', src/fs/trust.ts):
 * it names the commands root runs.
 */
export function loadConfig(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  channelTypes: ChannelSchemas,
): LoadedConfig {
  const path = configPath(flag, env);
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // Judge the file that was opened (fstat), so a swap after the check changes nothing.
    assertOpenFileTrusted('config file', path, fd);
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    if (isHvError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === DEFAULT_CONFIG_PATH)
      return { config: parseConfig({}, channelTypes), path: null };
    throw new HvError('config-unreadable', `cannot read config ${path}: ${code ?? String(e)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HvError('config-invalid', `invalid config ${path}: not valid JSON (${(e as Error).message})`);
  }
  return { config: parseConfig(raw, channelTypes, `config ${path}`), path };
}

/**
 * The schedule expression's meaning (keyword, cron, systemd calendar). Separate from the schema
 * because its parser loads node-cron: the daemon and every command check it, `hv status` and
 * `hv help` skip it so that they start fast.
 */
export async function checkSchedule(config: Config, source = 'config'): Promise<void> {
  const { parseSchedule } = await import('../schedule/index.js');
  try {
    parseSchedule(config.schedule);
  } catch (e) {
    throw new HvError('config-invalid', `invalid ${source}:\n${(e as Error).message}`);
  }
}
