import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePathSizes } from '../src/engine/closure.js';
import { diffClosures, parseStoreName } from '../src/engine/closure-diff.js';
import { diffSummary } from '../src/engine/closure-diff-text.js';
import { makeClosurePair } from './fixtures/closures.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** `nix store diff-closures` as a map: name → "old versions → new versions" (size-only lines: null). */
function nixDiffClosures(from: string, to: string): Map<string, string | null> {
  const out = execFileSync(
    'nix',
    ['--extra-experimental-features', 'nix-command', 'store', 'diff-closures', from, to],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const lines = new Map<string, string | null>();
  for (const raw of out.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const m = /^(.+?): (.*)$/.exec(raw.trim());
    if (!m) continue;
    const arrow = /^(.*?) → (.*?)(, [+-][\d.]+ KiB)?$/.exec(m[2] as string);
    lines.set(m[1] as string, arrow ? `${arrow[1]} → ${arrow[2]}` : null);
  }
  return lines;
}

/** hv's diff in the same shape as nixDiffClosures' version lines. */
function hvVersionLines(d: {
  changed: { name: string; from: string[]; to: string[] }[];
  added: { name: string; from: string[]; to: string[] }[];
  removed: { name: string; from: string[]; to: string[] }[];
}): Map<string, string> {
  const show = (vs: string[]) => (vs.length ? vs.map((v) => v || 'ε').join(', ') : '∅');
  const out = new Map<string, string>();
  for (const c of [...d.changed, ...d.added, ...d.removed])
    out.set(c.name, `${show(c.from)} → ${show(c.to)}`);
  return out;
}

describe('store path names, split as Nix splits them', () => {
  it.each([
    ['qemu-9.1.0', 'qemu', '9.1.0'],
    ['linux-6.6.30-modules', 'linux', '6.6.30'],
    ['glibc-2.39-52-bin', 'glibc', '2.39-52'],
    ['python3.11-requests-2.31.0', 'python3.11-requests', '2.31.0'],
    ['OVMF-202402-fd', 'OVMF', '202402'],
    ['nixos-system-hv01-24.05.20240903.abc', 'nixos-system-hv01', '24.05.20240903.abc'],
    ['etc', 'etc', ''],
    ['unit-libvirtd.service', 'unit-libvirtd.service', ''],
    ['perl5.38.2-URI-5.21-lib32', 'perl5.38.2-URI', '5.21'],
  ])('%s → %s %s', (storeName, name, version) => {
    expect(parseStoreName(storeName)).toEqual({ name, version });
  });

  it('reads nix path-info --size output, and names a line it cannot read', () => {
    const a = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-qemu-9.1.0';
    const b = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-glibc-2.39';
    expect(parsePathSizes(`${a}\t   1024\n${b}\t 5\n`)).toEqual([
      { path: a, narSize: 1024 },
      { path: b, narSize: 5 },
    ]);
    expect(() => parsePathSizes(`${a} 12 extra\n`)).toThrow(/nix path-info printed a line hv cannot read/);
  });

  it('counts a package rebuilt at the same version, lists version changes, highlights the watched ones', () => {
    const p = (h: string, name: string, narSize = 100) => ({
      path: `/nix/store/${h.repeat(32)}-${name}`,
      narSize,
    });
    const d = diffClosures({
      from: {
        path: p('0', 'nixos-system-a-1').path,
        closure: [
          p('0', 'nixos-system-a-1'),
          p('1', 'qemu-9.0.1'),
          p('2', 'libvirt-10.5.0'),
          p('3', 'spice-0.15.1'),
        ],
        kernel: '6.6.1',
      },
      to: {
        path: p('9', 'nixos-system-a-2').path,
        closure: [
          p('9', 'nixos-system-a-2'),
          p('4', 'qemu-9.1.0', 300),
          p('5', 'libvirt-10.5.0'),
          p('6', 'zfs-2.2.4'),
        ],
        kernel: '6.6.2',
      },
      watch: ['zfs'],
    });
    expect(d.changed.map((c) => [c.name, c.from, c.to, c.sizeDelta])).toEqual([
      ['qemu', ['9.0.1'], ['9.1.0'], 200],
    ]);
    expect(d.added.map((c) => c.name)).toEqual(['zfs']);
    expect(d.removed.map((c) => c.name)).toEqual(['spice']);
    expect(d.rebuilt).toEqual(['libvirt']);
    expect(d.kernel).toEqual({ from: '6.6.1', to: '6.6.2' });
    expect(diffSummary(d, ['zfs'])).toBe(
      'kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0, zfs added (2.2.4); 1 changed, 1 added, 1 removed, 1 rebuilt; closure +200 B',
    );
  });
});

describe('hv diff on a real Nix', () => {
  it('agrees with nix store diff-closures on a pair of ~400-path systems', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const pair = makeClosurePair({ n: 400, changes: 60, tag: 'agree' });
    const r = world.hv(['diff', '--from', pair.from, '--to', pair.to, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const d = r.json;
    expect(d.from.paths).toBe(pair.fromPaths);
    expect(d.to.paths).toBe(pair.toPaths);
    const nix = nixDiffClosures(pair.from, pair.to);
    const versions = new Map([...nix].filter(([, v]) => v !== null) as [string, string][]);
    // The toplevels are the two systems, not packages in them: hv leaves them out of its lists.
    versions.delete('nixos-system-agree');
    expect(hvVersionLines(d)).toEqual(versions);
    expect(d.changed.length).toBeGreaterThan(5);
    expect(d.added.length).toBeGreaterThan(5);
    expect(d.removed.length).toBeGreaterThan(5);
    // What diff-closures lists for size alone (≥ 8 KiB) is a rebuild at the same version to hv.
    const sizeOnly = [...nix].filter(([, v]) => v === null).map(([n]) => n);
    expect(sizeOnly.length).toBeGreaterThan(3);
    for (const name of sizeOnly) expect(d.rebuilt).toContain(name);
    expect(r.json.message).toContain(`Rebuilt at the same version: ${d.rebuilt.length}`);
  });

  it('agrees with nix store diff-closures on the running system and the one upgrade-test built', () => {
    world = new World({
      branches: ['nixos-24.05'],
      initial: { packages: ['qemu-9.0.1', 'libvirt-10.5.0', 'spice-0.15.1', 'OVMF-202402-fd'] },
    });
    const w = world;
    w.upstream.advance('nixos-24.05', {
      packages: ['qemu-9.1.0', 'libvirt-10.5.0', 'swtpm-0.9.0', 'OVMF-202402-fd'],
      rebuild: ['libvirt-10.5.0'],
      kernel: '6.6.2',
    });
    const previous = realpathSync(w.paths.currentSystem);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    // The tested system runs now (test activation); the diff is still from the system before it.
    expect(realpathSync(w.paths.currentSystem)).toBe(t.json.toplevel);
    const r = w.hv(['diff', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const d = r.json;
    expect(d.from.path).toBe(previous);
    expect(d.to.path).toBe(t.json.toplevel);
    const nix = new Map([...nixDiffClosures(d.from.path, d.to.path)].filter(([, v]) => v !== null));
    nix.delete('nixos-system-hv01');
    expect(hvVersionLines(d)).toEqual(nix);
    expect(d.changed.map((c: { name: string }) => c.name)).toEqual(['initrd-linux', 'linux', 'qemu']);
    expect(d.added.map((c: { name: string }) => c.name)).toEqual(['swtpm']);
    expect(d.removed.map((c: { name: string }) => c.name)).toEqual(['spice']);
    expect(d.rebuilt).toEqual(['libvirt']);
    expect(d.kernel).toEqual({ from: '6.6.1', to: '6.6.2' });
    expect(r.stdout).toContain('Highlights: kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0');
    expect(r.stdout).toContain('Rebuilt at the same version: 1');
  });

  it("caches a closure listing per system and ignores a cache file that is not that system's", () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const pair = makeClosurePair({ n: 60, changes: 8, tag: 'cache' });
    const first = w.hv(['diff', '--from', pair.from, '--to', pair.to, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const cached = join(w.paths.state, 'cache', 'closures', `${basename(pair.to)}.json`);
    expect(existsSync(cached)).toBe(true);
    // A listing that does not contain its own system is not used (it would make the diff lie).
    writeFileSync(cached, JSON.stringify([{ path: pair.from, narSize: 1 }]));
    const again = w.hv(['diff', '--from', pair.from, '--to', pair.to, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect({ ...again.json, message: '' }).toEqual({ ...first.json, message: '' });
  });

  it('takes generation numbers, and names what is wrong with a bad system or a missing test', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const none = w.hv(['diff']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no upgrade test has built a system yet.*--to/);
    const same = w.hv(['diff', '--from', '1', '--to', w.paths.currentSystem]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toContain('No package changes.');
    const gen = w.hv(['diff', '--from', '7']);
    expect(gen.code).toBe(2);
    expect(gen.stderr).toMatch(/--from 7: generation 7 of .* does not exist; generations are: 1/);
    const bad = w.hv(['diff', '--to', w.root]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--to .*: not a system in the Nix store/);
  });
});
