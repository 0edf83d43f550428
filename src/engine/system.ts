import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A generation of the system profile (`system-N-link`). */
export interface Generation {
  number: number;
  path: string;
  current: boolean;
}

function tryRealpath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The store path a system link (current, booted, profile) resolves to. */
export function systemPath(link: string): string | undefined {
  return tryRealpath(link);
}

export function currentGeneration(profile: string): number | undefined {
  try {
    const m = /-(\d+)-link$/.exec(readlinkSync(profile));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Generations of `profile`, oldest first (what `nix-env --list-generations` shows). */
export function listGenerations(profile: string): Generation[] {
  const dir = dirname(profile);
  const base = basename(profile);
  const current = currentGeneration(profile);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)-link$`);
  return names
    .map((n) => ({ n, m: re.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null)
    .map(({ n, m }) => ({
      number: Number(m[1]),
      path: tryRealpath(join(dir, n)) ?? '',
      current: Number(m[1]) === current,
    }))
    .sort((a, b) => a.number - b.number);
}

/** The NixOS version a toplevel carries (its `nixos-version` file), else its store name. */
export function versionOf(toplevel: string | undefined): string | undefined {
  if (!toplevel) return undefined;
  try {
    return readFileSync(join(toplevel, 'nixos-version'), 'utf8').trim();
  } catch {
    return basename(toplevel).replace(/^[a-z0-9]{32}-/, '');
  }
}

const BOOT_PARTS = ['kernel', 'initrd', 'kernel-modules'];

/** Parts that differ between two toplevels and need a reboot to take effect. */
export function rebootParts(toplevel: string | undefined, booted: string | undefined): string[] {
  if (!toplevel || !booted || toplevel === booted) return [];
  return BOOT_PARTS.filter((p) => tryRealpath(join(toplevel, p)) !== tryRealpath(join(booted, p)));
}

/**
 * Whether the host needs a reboot: boot parts of the running system differ from the booted one,
 * or the profile's current generation (e.g. installed with `switch-to-configuration boot`) is
 * neither running nor booted, so it only takes effect at the next boot.
 */
export function rebootStatus(
  current: string | undefined,
  booted: string | undefined,
  profileSystem: string | undefined,
): { required: boolean; parts: string[]; reason: string | undefined } {
  const parts = rebootParts(current, booted);
  if (parts.length)
    return { required: true, parts, reason: `${parts.join(', ')} differ from the booted system` };
  if (profileSystem && booted && profileSystem !== current && profileSystem !== booted)
    return {
      required: true,
      parts: [],
      reason: `the profile's current generation (${profileSystem}) becomes active at the next boot`,
    };
  return { required: false, parts: [], reason: undefined };
}
