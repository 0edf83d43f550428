/**
 * The name of hv's main command on this host, for every message that tells an admin what to run.
 * The NixOS module installs it as `hvu` by default (Hyper-NixOS has its own `hv`) and sets
 * HV_COMMAND_NAME for the commands and the daemon; elsewhere it is `hv`. The aliases
 * (hv-check-updates, hv-upgrade-test, hv-system-upgrade) never change, and chat says `/hv`.
 */
export function commandName(env: NodeJS.ProcessEnv = process.env): string {
  const name = env.HV_COMMAND_NAME;
  return name && /^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name) ? name : 'hv';
}

/** The main command's name, read once at start. */
export const HV = commandName();
