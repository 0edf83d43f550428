import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { RenderedService } from './eval-module.js';

const run = promisify(execFile);

// nixos/lib/systemd-lib.nix: a list becomes one line per element, booleans true/false.
const toOption = (value: unknown): string =>
  value === true ? 'true' : value === false ? 'false' : String(value);

function section(entries: Record<string, unknown>): string {
  return Object.entries(entries)
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${key}=${toOption(v)}\n`))
    .join('');
}

/**
 * The unit file NixOS writes for `systemd.services.<name>` (nixos/lib/systemd-lib.nix and
 * nixos/modules/system/boot/systemd.nix: dependencies and unitConfig in [Unit]; environment,
 * PATH from `path` and serviceConfig in [Service]), for the keys the module uses.
 */
export function renderUnit(service: RenderedService): string {
  const deps: Record<string, string[]> = {
    After: service.after,
    Wants: service.wants,
    BindsTo: service.bindsTo,
    PartOf: service.partOf,
    Requires: service.requires,
  };
  const unit: Record<string, unknown> = { Description: service.description };
  for (const [key, list] of Object.entries(deps)) if (list.length > 0) unit[key] = list.join(' ');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(service.environment)) if (v !== null) env[k] = v;
  if (service.path.length > 0) env.PATH = service.path.flatMap((p) => [`${p}/bin`, `${p}/sbin`]).join(':');
  const environment = Object.entries(env).map(([k, v]) => `"${k}=${v}"`);
  return `[Unit]\n${section({ ...unit, ...service.unitConfig })}\n[Service]\n${section({ Environment: environment, ...service.serviceConfig })}`;
}

/** The installed systemd's version (e.g. 252), or null when systemd-analyze is not installed. */
export async function systemdVersion(): Promise<number | null> {
  try {
    const { stdout } = await run('systemd-analyze', ['--version']);
    return Number(/^systemd (\d+)/.exec(stdout)?.[1] ?? Number.NaN);
  } catch {
    return null;
  }
}

/**
 * `systemd-analyze verify` of units (name → rendered text) side by side in a temporary directory,
 * with the /nix/store programs their Exec lines name replaced by executables there. Returns its
 * diagnostics, one per line: an unknown key, a value systemd cannot parse, a missing dependency.
 */
export async function verifyUnits(units: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'hv-units-'));
  try {
    const store = join(dir, 'store');
    for (const [name, text] of Object.entries(units)) {
      const local = text.replaceAll('/nix/store/', `${store}/`);
      for (const [, program] of local.matchAll(/^Exec\w+=(\S+)/gm)) {
        await mkdir(dirname(program!), { recursive: true });
        await writeFile(program!, '#!/bin/sh\n');
        await chmod(program!, 0o755);
      }
      await writeFile(join(dir, name), local);
    }
    const files = Object.keys(units).map((name) => join(dir, name));
    const result = await run('systemd-analyze', ['verify', '--man=no', ...files], {
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
    }).catch((e: { stdout?: string; stderr?: string }) => ({
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    }));
    return `${result.stdout}${result.stderr}`
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => line.replaceAll(`${dir}/`, ''));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
