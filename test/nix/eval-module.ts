import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Root of the repository. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A `config.systemd.services.<name>` as the module system renders it (the keys the tests read). */
export interface RenderedService {
  description: string;
  serviceConfig: Record<string, unknown>;
  unitConfig: Record<string, unknown>;
  restartIfChanged: boolean;
  reloadTriggers: unknown[];
  wantedBy: string[];
  wants: string[];
  after: string[];
  bindsTo: string[];
  partOf: string[];
  requires: string[];
  path: string[];
  startAt: string | string[];
  environment: Record<string, string | null>;
}

/** What test/nix/eval-module.nix returns for a user module (see that file). */
export interface ModuleEval {
  /** `config.systemd.services.hv-daemon`, or null when the daemon is not enabled. */
  service: RenderedService | null;
  /** `config.systemd.services.hv-chat`, or null when there is no chat process service. */
  chatService: RenderedService | null;
  /** `config.users.users` (root comes from the NixOS stub). */
  users: Record<string, { isSystemUser: boolean; isNormalUser: boolean; group: string; description: string }>;
  /** Names of `config.users.groups`. */
  groups: string[];
  /** Names of `config.systemd.timers`. */
  timers: string[];
  /** Text of `/etc/hv/config.json`, or null when hv is not installed. */
  configJson: string | null;
  /** `environment.systemPackages`; `buildCommand` is the build script of a runCommand package. */
  systemPackages: {
    name: string;
    storePath: string;
    buildCommand: string | null;
    mainProgram: string | null;
  }[];
  tmpfiles: string[];
  /** `security.pam.services.<name>.rules.session`, per PAM service. */
  pam: Record<string, Record<string, { enable: boolean; order: number; modulePath: string; args: string[] }>>;
  package: {
    name: string;
    pname: string;
    version: string;
    storePath: string;
    /** Arguments of buildNpmPackage, without src, npmDeps and npmConfigHook (shown below). */
    buildArgs: Record<string, unknown>;
    /** What importNpmLock was called with: its npmRoot and the URL and hash of each npm package. */
    npmDeps: {
      name: string;
      npmRoot: string;
      npmRootIsSrc: boolean;
      urls: Record<string, { url: string; hash: string }>;
    };
    /** The package's source: the directory it filters, and whether the filter keeps some paths. */
    src: { origSrc: string; keeps: Record<string, boolean>; drops: Record<string, boolean> };
  };
}

/**
 * Run `nix-instantiate --eval --strict --json` on a file under test/nix with `--arg`s, in a
 * temporary HOME, against the dummy store: evaluation reads the repository and writes nothing.
 * Rejects with Nix's error message.
 */
export async function nixEval(file: string, args: Record<string, string> = {}): Promise<unknown> {
  const home = await mkdtemp(join(tmpdir(), 'hv-nix-eval-'));
  try {
    const argv = ['--eval', '--strict', '--json', '--option', 'store', 'dummy://', join(repoRoot, file)];
    for (const [name, expr] of Object.entries(args)) argv.push('--arg', name, expr);
    const { stdout } = await run('nix-instantiate', argv, {
      cwd: home,
      env: { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, 'cache'), NIX_PATH: '' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((e: { stderr?: string; message: string }) => {
      throw new Error((e.stderr ?? '').trim() || e.message);
    });
    return JSON.parse(stdout) as unknown;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/**
 * Evaluate nix/module.nix with a user's NixOS module (a Nix expression: an attribute set or a
 * function of `{ config, lib, pkgs, ... }`) with nixpkgs' module system (the lib vendored in
 * test/nix/vendor) and the NixOS and package stubs of test/nix.
 */
export async function evalModule(userModuleNixExpr: string): Promise<ModuleEval> {
  return (await nixEval('test/nix/eval-module.nix', { userConfig: userModuleNixExpr })) as ModuleEval;
}

/**
 * The `/etc/hv/config.json` text the module renders for a user's NixOS module, e.g.
 * `{ hypervisor.updateChecker = { enable = true; schedule = "weekly"; }; }`. Rejects when the
 * module does not evaluate (unknown option, wrong type, failed assertion) or installs nothing.
 */
export async function evalModuleConfigJson(userModuleNixExpr: string): Promise<string> {
  const { configJson } = await evalModule(userModuleNixExpr);
  if (configJson === null) throw new Error('the module rendered no /etc/hv/config.json (is it installed?)');
  return configJson;
}
