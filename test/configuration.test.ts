import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** Give the host flake the configurations `names` (all the same system). */
function withConfigurations(w: World, names: string[]): void {
  const file = join(w.flakeDir, 'flake.nix');
  const text = readFileSync(file, 'utf8');
  const line = /^ {4}nixosConfigurations\.[^\n]*\n/m.exec(text)?.[0] as string;
  const body = line.replace(/nixosConfigurations\.[A-Za-z0-9_.-]+/, 'nixosConfigurations.NAME');
  writeFileSync(file, text.replace(line, names.map((n) => body.replace('NAME', n)).join('')));
}

describe('which nixosConfiguration is this host', () => {
  it('no host configured, hostname not in the flake, one configuration (hypervisor-x86_64): tested and applied', () => {
    expect(hostname()).not.toBe('hypervisor-x86_64');
    world = new World({ branches: ['nixos-24.05'], host: 'hypervisor-x86_64', config: { host: undefined } });
    const w = world;
    expect(JSON.parse(readFileSync(w.configPath, 'utf8')).host).toBeUndefined();
    w.upstream.advance('nixos-24.05');
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.json.configuration).toBe('hypervisor-x86_64');
    expect(t.json.toplevel).toMatch(/nixos-system-hypervisor-x86_64-/);
    const a = w.hv(['system-upgrade', '--yes']);
    expect(a.code, a.stderr).toBe(0);
    expect(realpathSync(w.paths.currentSystem)).toBe(t.json.toplevel);
  });

  it('two configurations, neither the hostname: exit 2 listing both and the key to set; nothing recorded or broadcast', () => {
    world = new World({ branches: ['nixos-24.05'], host: 'hv-a', config: { host: undefined } });
    const w = world;
    withConfigurations(w, ['hv-a', 'hv-b']);
    w.upstream.advance('nixos-24.05');
    const t = w.hv(['upgrade-test']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/hv-a, hv-b/);
    expect(t.stderr).toMatch(/set "host"/);
    expect(existsSync(w.paths.testJson)).toBe(false);
    expect(w.wallMessages()).toEqual([]);
    expect(w.activations()).toEqual([]);
  });

  it('a configured host the flake does not have: exit 2 naming it and what exists', () => {
    world = new World({ branches: ['nixos-24.05'], host: 'hv01' });
    const w = world;
    w.config.host = 'hv99';
    w.writeConfig();
    w.upstream.advance('nixos-24.05');
    const t = w.hv(['upgrade-test']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/host "hv99" is not a configuration .*hv01/);
    expect(existsSync(w.paths.testJson)).toBe(false);
  });

  it('with two configurations, the one named like the host is chosen without a host key', () => {
    world = new World({ branches: ['nixos-24.05'], host: hostname(), config: { host: undefined } });
    const w = world;
    withConfigurations(w, [hostname(), 'other']);
    w.upstream.advance('nixos-24.05');
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.json.configuration).toBe(hostname());
  });
});
