import type { Config } from '../config/schema.js';
import { HvError } from '../errors.js';
import type { OpLog } from '../log.js';
import type { Runner } from '../proc.js';
import { lastLines } from './nix.js';

/** The names under `nixosConfigurations` of the flake in `dir` (evaluated, nothing built). */
export async function configurationNames(
  runner: Runner,
  config: Config,
  dir: string,
): Promise<{ names: string[] } | { error: string }> {
  const r = await runner.run(
    [
      config.tools.nix,
      ...config.nix.extraArgs,
      'eval',
      '--json',
      '--no-write-lock-file',
      `${dir}#nixosConfigurations`,
      '--apply',
      'builtins.attrNames',
    ],
    { timeoutMs: 10 * 60_000 },
  );
  if (r.exitCode !== 0) return { error: lastLines(r.spawnError ?? r.stderr, 20) };
  try {
    const names = JSON.parse(r.stdout) as unknown;
    if (Array.isArray(names) && names.every((n) => typeof n === 'string')) return { names };
  } catch {
    // reported below
  }
  return { error: `unexpected output of nix eval: ${lastLines(r.stdout, 3)}` };
}

/**
 * Which `nixosConfigurations.<name>` is this host (SPEC "Configuration"): the configured `host` if
 * the flake has it; with no `host` configured, the hostname if the flake has that configuration,
 * else the flake's only configuration. Anything else is a configuration error (exit 2) that lists
 * the names the flake has and the key to set, never an evaluation failure to be broadcast.
 * An evaluation error of the flake itself returns the configured name: the build then fails and
 * is reported as what it is.
 */
export async function resolveConfiguration(
  runner: Runner,
  config: Config,
  dir: string,
  log: OpLog,
): Promise<string> {
  const found = await configurationNames(runner, config, dir);
  if ('error' in found) {
    log.warn('cannot list the flake configurations', { error: found.error });
    return config.host;
  }
  const { names } = found;
  const list = names.length ? names.join(', ') : 'none';
  if (names.includes(config.host)) return config.host;
  if (config.hostSource === 'config')
    throw new HvError(
      'config-invalid',
      `host "${config.host}" is not a configuration of the flake in ${dir}: it has nixosConfigurations ${list}; set "host" in the config to one of them`,
    );
  if (names.length === 1) {
    log.info('configuration chosen: the flake has only one', { name: names[0] });
    return names[0] as string;
  }
  throw new HvError(
    'config-invalid',
    `cannot tell which configuration of the flake in ${dir} is this host: the hostname "${config.host}" is not one of its nixosConfigurations (${list}); set "host" in the config to one of them`,
  );
}
