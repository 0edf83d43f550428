import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalModule, type ModuleEval, nixEval, repoRoot } from './eval-module.js';

const run = promisify(execFile);

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  optional?: boolean;
  os?: string[];
  link?: boolean;
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;

// nixpkgs' placeholder names, spelled in pieces so that this file does not match them itself.
const fake = (name: string) => `fake${name}`;

/**
 * Tracked files (of the git repository in `dir`) that hold a placeholder hash: nixpkgs' fake
 * hashes by name, or the values they stand for. Every tracked file counts (the vendored nixpkgs
 * lib, which defines those names itself, is tracked as its archive).
 */
async function placeholderHashes(dir: string): Promise<string[]> {
  const pattern = `${fake('Hash')}|${fake('Sha')}(256|512)|lib\\.${fake('')}|sha(256|512)-A{40,}|\\b0{52,}\\b`;
  try {
    const { stdout } = await run('git', ['grep', '-nIE', pattern], {
      cwd: dir,
    });
    return stdout.trim().split('\n');
  } catch (e) {
    if ((e as { code?: number }).code === 1) return []; // git grep: no match
    throw e;
  }
}

describe('no placeholder hash in the repository', () => {
  it('no tracked file uses a fake or dummy hash', async () => {
    expect(await placeholderHashes(repoRoot)).toEqual([]);
  });

  it('the check finds one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hv-fake-hash-'));
    try {
      await run('git', ['init', '-q'], { cwd: dir });
      await writeFile(join(dir, 'package.nix'), `{ lib }: { npmDepsHash = lib.${fake('Hash')}; }\n`);
      await writeFile(join(dir, 'lock.json'), `{ "narHash": "sha256-${'A'.repeat(43)}=" }\n`);
      await run('git', ['add', '.'], { cwd: dir });
      const found = await placeholderHashes(dir);
      expect(found).toHaveLength(2);
      expect(found[0]).toMatch(/^lock\.json:1:/);
      expect(found[1]).toMatch(new RegExp(`^package\\.nix:1:.*lib\\.${fake('Hash')}`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('nix/package.nix', () => {
  let pkg: ModuleEval['package'];
  let lock: { packages: Record<string, LockEntry> };
  beforeAll(async () => {
    pkg = (await evalModule('{ }')).package;
    lock = await readJson(join(repoRoot, 'package-lock.json'));
  });

  it('builds hv with buildNpmPackage, Node 22 and importNpmLock of the repository (no npmDepsHash)', () => {
    expect(pkg.pname).toBe('hv');
    expect(pkg.buildArgs.nodejs).toMatch(/-nodejs-22$/);
    expect(pkg.buildArgs).not.toHaveProperty('npmDepsHash');
    expect(pkg.npmDeps.npmRoot).toBe(repoRoot);
    expect(pkg.npmDeps.npmRootIsSrc).toBe(true);
    expect(pkg.npmDeps.name).toBe('hv-0.1.0-sources');
  });

  it('fetches every npm package of package-lock.json by URL, checked against its integrity', () => {
    const otherOs = (e: LockEntry) => e.optional === true && e.os !== undefined && !e.os.includes('linux');
    const entries = Object.entries(lock.packages).filter(([key, e]) => key !== '' && !e.link);
    expect(entries.length).toBeGreaterThan(100);
    for (const [key, entry] of entries) {
      const fetched = pkg.npmDeps.urls[key];
      if (otherOs(entry)) {
        expect(fetched, key).toBeUndefined();
        continue;
      }
      expect(entry.integrity, key).toMatch(/^sha512-/);
      const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const base = name.slice(name.lastIndexOf('/') + 1);
      expect(fetched, key).toEqual({
        url: entry.resolved ?? `https://registry.npmjs.org/${name}/-/${base}-${entry.version}.tgz`,
        hash: entry.integrity,
      });
    }
    // Build tools and esbuild's Linux binary are among them; macOS binaries are not.
    expect(pkg.npmDeps.urls['node_modules/@esbuild/linux-x64']?.url).toBe(
      `https://registry.npmjs.org/@esbuild/linux-x64/-/linux-x64-${lock.packages['node_modules/@esbuild/linux-x64']!.version}.tgz`,
    );
    expect(pkg.npmDeps.urls['node_modules/typescript']).toBeDefined();
    expect(pkg.npmDeps.urls['node_modules/@esbuild/darwin-arm64']).toBeUndefined();
  });

  it('installs the chat process as libexec/hv/hv-chat: Node 22 on the bundle, off the PATH', async () => {
    const nodejs = pkg.buildArgs.nodejs as string;
    expect(nodejs).toMatch(/-nodejs-22$/);
    // Run the postInstall script as the build's bash would, with a makeWrapper that prints its arguments.
    const shim = 'makeWrapper() { printf "%s\\n" "$@"; }';
    const { stdout } = await run('bash', ['-euc', `${shim}\n${pkg.buildArgs.postInstall as string}`], {
      env: { ...process.env, out: '/nix/store/out-hv' },
    });
    // npmInstallHook installs the package into $out/lib/node_modules/<name of package.json>.
    expect(stdout.trim().split('\n')).toEqual([
      `${nodejs}/bin/node`,
      '/nix/store/out-hv/libexec/hv/hv-chat',
      '--add-flags',
      '/nix/store/out-hv/lib/node_modules/hv/dist/bundle/hv-chat.mjs',
    ]);
    expect(pkg.buildArgs.nativeBuildInputs).toEqual([expect.stringMatching(/-make-shell-wrapper-hook$/)]);
    const packageJson = await readJson<{ name: string; bin: Record<string, string> }>(
      join(repoRoot, 'package.json'),
    );
    expect(packageJson.name).toBe('hv');
    expect(Object.keys(packageJson.bin)).not.toContain('hv-chat');
    expect(Object.values(packageJson.bin)).not.toContain('dist/bundle/hv-chat.mjs');
  });

  it('the bundle the wrapper runs is among the files the package installs (after `npm run build`)', async () => {
    // npmInstallHook installs what `npm pack` packs.
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: repoRoot,
    });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/bundle/hv-chat.mjs');
    expect(files).toContain('dist/bundle/hv.mjs');
  });

  it('builds from the repository without build output, dependencies, Nix files or the vendored lib', () => {
    expect(pkg.src.origSrc).toBe(repoRoot);
    expect(Object.entries(pkg.src.keeps).filter(([, kept]) => !kept)).toEqual([]);
    expect(Object.entries(pkg.src.drops).filter(([, dropped]) => !dropped)).toEqual([]);
  });

  describe('with a package-lock.json entry importNpmLock cannot fetch', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'hv-package-nix-'));
      await mkdir(join(dir, 'nix'));
      await copyFile(join(repoRoot, 'nix/package.nix'), join(dir, 'nix/package.nix'));
      await copyFile(join(repoRoot, 'package.json'), join(dir, 'package.json'));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    const evalPackage = () =>
      nixEval('test/nix/eval-package.nix', { packageFile: `${dir}/nix/package.nix` }) as Promise<{
        urls: number;
      }>;

    it('fails evaluation when an entry has no integrity hash', async () => {
      const broken = structuredClone(lock);
      delete broken.packages['node_modules/zod']!.integrity;
      await writeFile(join(dir, 'package-lock.json'), JSON.stringify(broken));
      await expect(evalPackage()).rejects.toThrow(/node_modules\/zod has no resolved URL/);
      // The unchanged lock evaluates in the same place.
      await writeFile(join(dir, 'package-lock.json'), JSON.stringify(lock));
      expect((await evalPackage()).urls).toBe(Object.keys(pkg.npmDeps.urls).length);
    });
  });
});

describe('flake.nix and flake.lock', () => {
  interface FlakeLock {
    version: number;
    root: string;
    nodes: Record<
      string,
      {
        inputs?: Record<string, string>;
        locked?: Record<string, string | number>;
        original?: Record<string, string>;
      }
    >;
  }

  it('flake.lock pins the nixpkgs input of flake.nix to a NixOS release commit', async () => {
    const lock = await readJson<FlakeLock>(join(repoRoot, 'flake.lock'));
    const flake = (await nixEval('test/nix/eval-flake.nix')) as { inputs: Record<string, string> };
    expect(lock.version).toBe(7);
    const nodeName = lock.nodes[lock.root]!.inputs!.nixpkgs!;
    const node = lock.nodes[nodeName]!;
    expect(node.locked).toMatchObject({ type: 'github', owner: 'NixOS', repo: 'nixpkgs' });
    expect(node.locked!.rev).toMatch(/^[0-9a-f]{40}$/);
    expect(node.locked!.narHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
    expect(node.locked!.lastModified).toBeGreaterThan(1_700_000_000);
    const { owner, repo, ref } = node.original!;
    expect(flake.inputs.nixpkgs).toBe(`github:${owner}/${repo}/${ref}`);
    expect(ref).toMatch(/^nixos-\d\d\.\d\d$/);
  });

  it('Nix accepts the lock for flake.nix without changing it, and refuses it for another branch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hv-flake-lock-'));
    const nix = (args: string[]) =>
      run('nix', args, { cwd: dir, env: { ...process.env, HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') } });
    try {
      for (const file of ['flake.nix', 'flake.lock']) await copyFile(join(repoRoot, file), join(dir, file));
      const lockText = await readFile(join(dir, 'flake.lock'), 'utf8');
      // --no-update-lock-file: Nix fails if the lock lacks an input of flake.nix or does not parse.
      await nix(['flake', 'lock', '--offline', '--no-update-lock-file', `path:${dir}`]);
      expect(await readFile(join(dir, 'flake.lock'), 'utf8')).toBe(lockText);
      const { stdout } = await nix(['flake', 'metadata', '--offline', '--json', `path:${dir}`]);
      const locks = (JSON.parse(stdout) as { locks: FlakeLock }).locks;
      expect(locks).toEqual(JSON.parse(lockText));

      const flakeNix = await readFile(join(dir, 'flake.nix'), 'utf8');
      await writeFile(join(dir, 'flake.nix'), flakeNix.replace(/nixos-\d\d\.\d\d/, 'nixos-99.11'));
      await expect(
        nix(['flake', 'lock', '--offline', '--no-update-lock-file', `path:${dir}`]),
      ).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the package, the NixOS module and the VM check of the flake evaluate (nixpkgs stubbed)', async () => {
    const result = (await nixEval('test/nix/eval-flake.nix')) as Record<string, unknown>;
    expect(result).toMatchObject({
      systems: ['aarch64-linux', 'x86_64-linux'],
      package: 'hv-0.1.0',
      modulePackage: 'hv-0.1.0',
      modulePackageIsFlakePackage: true,
      vmTest: { name: 'hv-update-checker', nodes: ['machine', 'manual'] },
    });
    expect(result.moduleService).toMatch(/-hv-0\.1\.0\/bin\/hv daemon --config \/etc\/hv\/config\.json$/);
  });
});
