import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshot, World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

describe('hv check-updates on a real Nix', () => {
  it('up-to-date host: exit 0, no notices, flake.lock byte-identical', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const lock = readFileSync(join(world.flakeDir, 'flake.lock'));
    const r = world.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.status).toBe('up-to-date');
    expect(existsSync(world.paths.motd)).toBe(false);
    expect(existsSync(world.paths.updateText)).toBe(false);
    expect(existsSync(world.paths.updateJson)).toBe(false);
    expect(readFileSync(join(world.flakeDir, 'flake.lock')).equals(lock)).toBe(true);
    expect(world.wallMessages()).toHaveLength(0);
  });

  it('advanced upstream: exit 100 with the new rev, notices, one wall message, flake dir untouched; then no repeat; then back', () => {
    world = new World();
    const before = snapshot(world.flakeDir);
    const newRev = world.upstream.advance('nixos-24.05');
    const r = world.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(r.json.status).toBe('update-available');
    expect(r.json.available.rev).toBe(newRev);
    expect(r.json.current.rev).not.toBe(newRev);
    expect(r.json.available.date).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect(world.read(world.paths.motd)).toContain('hv upgrade-test');
    expect(world.read(world.paths.updateText)).toContain(newRev);
    expect(JSON.parse(world.read(world.paths.updateJson)).available.rev).toBe(newRev);
    expect(world.wallMessages()).toHaveLength(1);
    expect(world.wallMessages()[0]).toContain('update available');
    expect(snapshot(world.flakeDir)).toEqual(before);

    // Nothing new: still 100, no second broadcast.
    const again = world.hv(['check-updates', '--json']);
    expect(again.code).toBe(100);
    expect(world.wallMessages()).toHaveLength(1);

    // Upstream back at the locked rev: up to date, the update notice gone; what remains is the
    // newer release (nixos-24.11 in this world), with the command that tests it.
    const locked = JSON.parse(world.read(join(world.flakeDir, 'flake.lock'))).nodes.nixpkgs.locked.rev;
    world.upstream.reset('nixos-24.05', locked);
    const back = world.hv(['check-updates', '--json']);
    expect(back.code).toBe(0);
    expect(back.json.status).toBe('up-to-date');
    expect(world.read(world.paths.motd)).not.toContain('update available');
    expect(world.read(world.paths.motd)).toContain('hv upgrade-test --release 24.11');
    expect(world.read(world.paths.updateText)).toContain('hv upgrade-test --release 24.11');
    expect(existsSync(world.paths.updateJson)).toBe(false);
    expect(snapshot(world.flakeDir)).toEqual(before);
  });

  it('reports newer release branches sorted, never the tracked, older, -small or unstable ones', () => {
    world = new World({
      branches: [
        'nixos-24.05',
        'nixos-25.05',
        'nixos-23.11',
        'nixos-24.11',
        'nixos-unstable',
        'nixos-25.05-small',
      ],
    });
    const r = world.hv(['check-updates', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.releases.map((x: { branch: string }) => x.branch)).toEqual(['nixos-24.11', 'nixos-25.05']);
    const s = world.hv(['status', '--json']);
    expect(s.json.newerReleases).toEqual(['nixos-24.11', 'nixos-25.05']);
  });

  it('unreachable upstream: exit 1, clear message, notices untouched', () => {
    world = new World({ branches: ['nixos-24.05'] });
    world.upstream.advance('nixos-24.05');
    expect(world.hv(['check-updates']).code).toBe(100);
    const motd = world.read(world.paths.motd);
    const details = world.read(world.paths.updateText);
    // Move the upstream away: git ls-remote fails.
    renameSync(world.upstream.dir, `${world.upstream.dir}.gone`);
    const r = world.hv(['check-updates', '--json']);
    expect(r.code).toBe(1);
    expect(r.json.status).toBe('error');
    expect(r.stderr + r.json.message).toMatch(/check failed.*git ls-remote/is);
    // Where to read more: the checker's log.
    expect(r.json.message).toMatch(/Log: .*update-checker\.log/);
    const text = world.hv(['check-updates']);
    expect(text.stdout + text.stderr).toMatch(/Log: .*update-checker\.log/);
    expect(world.read(world.paths.motd)).toBe(motd);
    expect(world.read(world.paths.updateText)).toBe(details);
    const status = world.hv(['status', '--json']);
    expect(status.json.lastCheck.ok).toBe(false);
  });

  it('input pinned to a rev: says there is nothing to track', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const lockPath = join(world.flakeDir, 'flake.lock');
    const lock = JSON.parse(world.read(lockPath));
    lock.nodes.nixpkgs.original.rev = lock.nodes.nixpkgs.locked.rev;
    writeFileSync(lockPath, JSON.stringify(lock));
    const r = world.hv(['check-updates', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.pinned).toBe(true);
    expect(r.json.message).toMatch(/pinned.*nothing to track/);
  });

  it('missing flake.lock and unknown input fail with exit 1 and say what to do', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    world.config.flake = { dir: world.flakeDir, input: 'nixos-hardware' };
    world.writeConfig();
    const r = world.hv(['check-updates']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/"nixos-hardware" is not in flake.lock; inputs are: nixpkgs/);
    world.config.flake = { dir: join(world.root, 'nowhere'), input: 'nixpkgs' };
    world.writeConfig();
    const m = world.hv(['check-updates']);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/flake.lock does not exist/);
  });

  it('two checks at once: the second exits 4 naming the holder, or both succeed; state stays valid', async () => {
    world = new World({ branches: ['nixos-24.05'] });
    world.upstream.advance('nixos-24.05');
    const runs = [world.hvSpawn(['check-updates', '--json']), world.hvSpawn(['check-updates', '--json'])];
    const results = await Promise.all(
      runs.map(
        (p) =>
          new Promise<{ code: number; out: string }>((resolve) => {
            let out = '';
            p.stdout.on('data', (d) => {
              out += d;
            });
            p.on('close', (code) => resolve({ code: code ?? -1, out }));
          }),
      ),
    );
    const codes = results.map((r) => r.code).sort((a, b) => a - b);
    expect(codes[1]).toBe(100);
    expect([4, 100]).toContain(codes[0]);
    const busy = results.find((r) => r.code === 4);
    if (busy) expect(JSON.parse(busy.out).message).toMatch(/check-updates since .* by /);
    expect(JSON.parse(world.read(world.paths.updateJson)).status).toBe('update-available');
    expect(world.wallMessages()).toHaveLength(1);
    expect(world.hv(['audit', '--verify']).code).toBe(0);
  });
});

describe('hv audit --verify', () => {
  it('passes on an untouched log, fails after one line is altered or the last is removed', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    for (let i = 0; i < 3; i++) world.hv(['check-updates']);
    const ok = world.hv(['audit', '--verify', '--json']);
    expect(ok.code).toBe(0);
    expect(ok.json.records).toBe(3);
    const original = world.read(world.paths.audit);
    const lines = original.trim().split('\n');
    writeFileSync(
      world.paths.audit,
      `${[lines[0], lines[1]?.replace('up-to-date', 'passed'), lines[2]].join('\n')}\n`,
    );
    const edited = world.hv(['audit', '--verify']);
    expect(edited.code).toBe(1);
    expect(edited.stderr).toMatch(/line 2: content does not match/);
    writeFileSync(world.paths.audit, `${lines.slice(0, 2).join('\n')}\n`);
    const truncated = world.hv(['audit', '--verify']);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(/removed from the end/);
  });
});
