import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hvBin } from './fixtures/world.js';

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

function tarball(dir: string, content: string): void {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'src', 'flake.nix'), `{ outputs = { self }: { marker = "${content}"; }; }\n`);
  execFileSync('tar', ['czf', join(dir, 'nixpkgs.tar.gz'), '-C', dir, 'src']);
}

function hv(config: string, args: string[]) {
  const out = execFileSync(process.execPath, [hvBin, ...args, '--config', config], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out);
}

describe('check-updates for inputs that are not git-hosted (nix flake metadata --refresh)', () => {
  it('a tarball input: a changed tarball is an update (by narHash), the same one is not', () => {
    root = mkdtempSync(join(tmpdir(), 'hv-tarball-'));
    tarball(root, 'one');
    const flakeDir = join(root, 'host');
    mkdirSync(flakeDir);
    writeFileSync(
      join(flakeDir, 'flake.nix'),
      `{ inputs.nixpkgs.url = "file://${root}/nixpkgs.tar.gz"; outputs = { self, nixpkgs }: { }; }\n`,
    );
    execFileSync('nix', ['flake', 'lock'], { cwd: flakeDir, stdio: 'ignore' });
    const lock = readFileSync(join(flakeDir, 'flake.lock'));
    const config = join(root, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        allowNonRoot: true,
        flake: { dir: flakeDir },
        paths: { state: join(root, 'state'), log: join(root, 'log'), motd: join(root, 'motd') },
        notify: { channels: [{ type: 'motd' }] },
      }),
    );
    let r: { status: string; method: string } | undefined;
    try {
      r = hv(config, ['check-updates', '--json']);
    } catch (e) {
      throw new Error(`expected exit 0: ${(e as { stderr?: string }).stderr}`);
    }
    expect(r?.status).toBe('up-to-date');
    expect(r?.method).toBe('nix-flake-metadata');

    tarball(root, 'two');
    let update: { status: string } | undefined;
    try {
      hv(config, ['check-updates', '--json']);
    } catch (e) {
      const err = e as { status: number; stdout: string };
      expect(err.status).toBe(100);
      update = JSON.parse(err.stdout);
    }
    expect(update?.status).toBe('update-available');
    expect(readFileSync(join(flakeDir, 'flake.lock')).equals(lock)).toBe(true);
  });
});
