import { chmodSync, existsSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/schema.js';
import { recordSystemLock } from '../src/engine/system-locks.js';
import { statePaths } from '../src/state.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const lockPath = (w: World) => join(w.flakeDir, 'flake.lock');
const lockedRev = (w: World): string => JSON.parse(w.read(lockPath(w))).nodes.nixpkgs.locked.rev;
const short = (rev: string) => rev.slice(0, 12);
const recordsDir = (w: World) => join(w.paths.state, 'system-locks');
const records = (w: World) => (existsSync(recordsDir(w)) ? readdirSync(recordsDir(w)) : []);
const checkerLog = (w: World) => w.tryRead(join(w.paths.log, 'update-checker.log')) ?? '';

/** What an admin does in the flake dir without applying it: move the tracked input to upstream's head. */
function lockByHand(w: World): void {
  w.nix(['flake', 'lock', '--update-input', 'nixpkgs', '--refresh'], w.flakeDir);
}

/** Take nix away from hv: any evaluation fails, so an answer proves it came from a record. */
function withoutNix(w: World): void {
  w.config.tools = { ...(w.config.tools as object), nix: join(w.root, 'bin', 'no-nix') };
  w.writeConfig();
}

describe('check-updates: the live flake.lock against the running system', () => {
  it('a live lock ahead of what runs is an update (exit 100, motd, one broadcast per fact); after installing it, up to date', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const running = realpathSync(w.paths.currentSystem);
    const oldRev = lockedRev(w);

    // First check: no record yet; the live flake is evaluated (not built) and proves what runs.
    const first = w.hv(['check-updates', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json.liveLock).toMatchObject({ matchesRunning: true, source: 'evaluation' });
    expect(records(w)).toEqual([`${running.split('/').pop()}.json`]);
    expect(w.hv(['status']).stdout).toMatch(/Live lock: +what runs/);

    // Upstream moves: an upstream update, announced once.
    const newRev = w.upstream.advance('nixos-24.05');
    const up = w.hv(['check-updates', '--json']);
    expect(up.code).toBe(100);
    expect(up.json.upstreamUpdate).toBe(true);
    expect(w.wallMessages()).toHaveLength(1);

    // Someone runs `nix flake lock --update-input` in the flake dir and never applies it: upstream
    // equals the lock now, but the lock is not what runs.
    lockByHand(w);
    expect(lockedRev(w)).toBe(newRev);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(r.json.status).toBe('update-available');
    expect(r.json.upstreamUpdate).toBe(false);
    expect(r.json.liveLock).toMatchObject({ matchesRunning: false, source: 'hv', system: running });
    expect(r.json.message).toContain('the live flake.lock is not what runs');
    expect(r.json.message).toContain(`locked nixpkgs ${short(newRev)}`);
    expect(r.json.message).toContain(`running ${short(oldRev)}`);
    expect(r.json.message).toContain('hv upgrade-test');
    expect(w.read(w.paths.motd)).toMatch(/not what runs/);
    expect(w.read(w.paths.motd)).toContain(short(oldRev).slice(0, 10));
    expect(w.read(w.paths.updateText)).toMatch(/Why: +the live flake\.lock is not what runs/);
    // A different fact from the earlier upstream announcement: broadcast, not taken for a repeat.
    expect(w.wallMessages()).toHaveLength(2);
    expect(w.wallMessages()[1]).toMatch(/not what runs/);
    // The same fact again: still 100, no new broadcast.
    expect(w.hv(['check-updates']).code).toBe(100);
    expect(w.wallMessages()).toHaveLength(2);
    // status tells the same, without evaluating anything.
    const s = w.hv(['status', '--json']);
    expect(s.json.liveLock.matchesRunning).toBe(false);
    expect(w.hv(['status']).stdout).toMatch(/Live lock: +NOT what runs/);

    // The running system becomes what the live lock builds: up to date, notices gone.
    w.installCurrent();
    const done = w.hv(['check-updates', '--json']);
    expect(done.code, done.json?.message).toBe(0);
    expect(done.json.liveLock).toMatchObject({ matchesRunning: true, source: 'evaluation' });
    expect(existsSync(w.paths.motd)).toBe(false);
    expect(existsSync(w.paths.updateText)).toBe(false);
    expect(w.wallMessages()).toHaveLength(2);
  });

  it('a live lock ahead of what runs: upgrade-test and system-upgrade make it what runs, then the check exits 0', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    w.upstream.advance('nixos-24.05');
    lockByHand(w);
    expect(w.hv(['check-updates']).code).toBe(100);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    const a = w.hv(['system-upgrade', '--yes', '--json']);
    expect(a.code, a.stderr + a.stdout).toBe(0);
    withoutNix(w);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.json?.message).toBe(0);
    expect(r.json.liveLock.matchesRunning).toBe(true);
    expect(['hv', 'backup']).toContain(r.json.liveLock.source);
    expect(existsSync(w.paths.motd)).toBe(false);
  });

  it('without any record, the evaluation says the live flake is not what runs', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    w.upstream.advance('nixos-24.05');
    lockByHand(w);
    const lock = readFileSync(lockPath(w));
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(r.json.liveLock).toMatchObject({ matchesRunning: false, source: 'evaluation' });
    expect(r.json.message).toMatch(
      /live flake.lock is not what runs .*evaluates to .*not .*flake\.lock or its configuration/,
    );
    expect(existsSync(w.paths.motd)).toBe(true);
    // The check evaluated the flake without writing the lock, and recorded nothing false.
    expect(readFileSync(lockPath(w)).equals(lock)).toBe(true);
    expect(records(w)).toEqual([]);
    // Nothing changed: the next check reuses that evaluation (it works without Nix)...
    withoutNix(w);
    const again = w.hv(['check-updates', '--json']);
    expect(again.code, again.stderr).toBe(100);
    expect(again.json.liveLock).toMatchObject({ matchesRunning: false, source: 'evaluation' });
    expect(again.json.liveLock.detail).toMatch(/\(evaluated \d{4}-/);
    // ...but not once the flake dir changed: then it has to evaluate again, and says it cannot tell.
    writeFileSync(
      join(w.flakeDir, 'configuration.nix'),
      `{ host = "${w.host}"; root = "${w.root}"; extra = "x"; }\n`,
    );
    const changed = w.hv(['check-updates', '--json']);
    expect(changed.code).toBe(0);
    expect(changed.json.liveLock).toMatchObject({ matchesRunning: null, source: 'unknown' });
  });

  it('a system hv recorded: the check needs no Nix and is right both ways', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const running = realpathSync(w.paths.currentSystem);
    const paths = statePaths({ paths: { state: w.paths.state } } as Config);
    const oldLock = w.read(lockPath(w));
    const oldRev = lockedRev(w);
    recordSystemLock(paths, running, oldLock);
    const file = join(recordsDir(w), `${running.split('/').pop()}.json`);
    expect(JSON.parse(w.read(file))).toMatchObject({ system: running, lock: oldLock });
    expect(readdirSync(recordsDir(w)).length).toBe(1);
    withoutNix(w);

    const ok = w.hv(['check-updates', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.liveLock).toMatchObject({ matchesRunning: true, source: 'hv' });

    const newRev = w.upstream.advance('nixos-24.05');
    lockByHand(w);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(r.json.liveLock).toMatchObject({ matchesRunning: false, source: 'hv' });
    expect(r.json.message).toContain(`locked nixpkgs ${short(newRev)}`);
    expect(r.json.message).toContain(`running ${short(oldRev)}`);
    expect(w.hv(['status', '--json']).json.liveLock).toMatchObject({ matchesRunning: false, source: 'hv' });

    // The lock hv recorded for the running system is put back: up to date again.
    writeFileSync(lockPath(w), oldLock);
    w.upstream.reset('nixos-24.05', oldRev);
    const back = w.hv(['check-updates', '--json']);
    expect(back.code).toBe(0);
    expect(back.json.liveLock.matchesRunning).toBe(true);
  });

  it('when hv cannot tell, it says so and does not call it an update', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    withoutNix(w);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.liveLock).toMatchObject({ matchesRunning: null, source: 'unknown' });
    expect(r.json.message).toContain('cannot tell which flake.lock produced the running system');
    expect(existsSync(w.paths.motd)).toBe(false);
    expect(w.hv(['status']).stdout).toMatch(/Live lock: +cannot tell/);
  });

  it("nixos-version's nixpkgs revision tells a live lock that is not what runs", () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const oldRev = lockedRev(w);
    const tool = join(w.root, 'bin', 'nixos-version');
    writeFileSync(tool, `#!/bin/sh\necho '{"nixosVersion":"24.05.1","nixpkgsRevision":"${oldRev}"}'\n`);
    chmodSync(tool, 0o755);
    w.upstream.advance('nixos-24.05');
    lockByHand(w);
    withoutNix(w);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(r.json.liveLock).toMatchObject({ matchesRunning: false, source: 'nixos-version' });
    expect(r.json.message).toContain(`running ${short(oldRev)}`);
  });
});

describe('check-updates: an upstream head behind the lock is not an update', () => {
  it('a branch reset to an older commit: exit 0, says what was seen, logs it, broadcasts nothing', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const initRev = lockedRev(w);
    // Upstream moves and is announced; the admin applies it (lock + running system).
    const newRev = w.upstream.advance('nixos-24.05');
    expect(w.hv(['check-updates']).code).toBe(100);
    expect(w.wallMessages()).toHaveLength(1);
    lockByHand(w);
    w.installCurrent();
    // Then the branch is force-pushed back to the old commit.
    w.upstream.reset('nixos-24.05', initRev);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.json?.message).toBe(0);
    expect(r.json.status).toBe('up-to-date');
    expect(r.json.upstreamBehind).toMatchObject({ rev: initRev, why: 'older' });
    expect(r.json.available.rev).toBe(newRev);
    expect(r.json.message).toMatch(
      new RegExp(
        `upstream nixos-24.05 is at ${short(initRev)} \\(\\d{4}-\\d\\d-\\d\\d\\), older than the locked ${short(newRev)} \\(\\d{4}-\\d\\d-\\d\\d\\): not an update`,
      ),
    );
    expect(existsSync(w.paths.motd)).toBe(false);
    expect(existsSync(w.paths.updateJson)).toBe(false);
    expect(w.wallMessages()).toHaveLength(1);
    expect(checkerLog(w)).toMatch(/upstream head behind the lock; not an update .*why=older/);
    // Again: nothing re-sent.
    expect(w.hv(['check-updates']).code).toBe(0);
    expect(w.wallMessages()).toHaveLength(1);
  });

  it('an upstream head with the same commit time that is an ancestor of the locked rev is not an update', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const date = new Date(Math.floor(Date.now() / 1000 - 3600) * 1000);
    const first = w.upstream.advance('nixos-24.05', {}, { date });
    const second = w.upstream.advance('nixos-24.05', {}, { date });
    lockByHand(w);
    w.installCurrent();
    expect(lockedRev(w)).toBe(second);
    w.upstream.reset('nixos-24.05', first);
    const r = w.hv(['check-updates', '--json']);
    expect(r.code, r.json?.message).toBe(0);
    expect(r.json.upstreamBehind).toMatchObject({ rev: first, why: 'ancestor' });
    expect(r.json.message).toMatch(/an ancestor of the locked .*not an update/);
    expect(w.wallMessages()).toHaveLength(0);

    // A newer commit on a history that does not contain the locked rev is still an update.
    w.upstream.reset('nixos-24.05', first);
    const diverged = w.upstream.advance('nixos-24.05');
    const u = w.hv(['check-updates', '--json']);
    expect(u.code).toBe(100);
    expect(u.json.available.rev).toBe(diverged);
  });
});
