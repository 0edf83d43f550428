import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../src/notify/outbox.js';
import { identityOf, isRunning, parseStartTime, selfIdentity } from '../src/process-identity.js';
import { World } from './fixtures/world.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The boot id of this machine, read here without the code under test. */
const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const otherBoot = '00000000-1111-2222-3333-444444444444';
const deadPid = () => spawnSync('true').pid as number;

// A real stat line of a process whose comm is "a) b (c) d": spaces and parentheses inside.
const stat = (comm: string, start: number) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 163 0 0 0 1 2 0 0 20 0 1 0 ${start} 2490368 223 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n`;

describe('process identity', () => {
  it('parses the start time after the last ")" of /proc/<pid>/stat, whatever the comm holds', () => {
    expect(parseStartTime(stat('sleep', 123456))).toBe(123456);
    expect(parseStartTime(stat('a) b (c) d', 987654321))).toBe(987654321);
    expect(parseStartTime(stat(') 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20', 77))).toBe(77);
    expect(parseStartTime(stat('', 5))).toBe(5);
    expect(parseStartTime('4242 (sleep) S 1 2 3')).toBeNull(); // truncated
    expect(parseStartTime('garbage')).toBeNull();
  });

  it("reads this process's boot id and start time from /proc and judges records by them", () => {
    const me = selfIdentity();
    expect(me.pid).toBe(process.pid);
    expect(me.bootId).toBe(bootId);
    expect(me.startTime).toBeGreaterThan(0);
    // A child started after this process has a later (or equal) start time.
    const child = spawn('sleep', ['30']);
    try {
      const c = identityOf(child.pid as number);
      expect(c.startTime).toBeGreaterThanOrEqual(me.startTime as number);
      expect(isRunning(c)).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
    expect(isRunning(me)).toBe(true);
    expect(isRunning({ ...me, bootId: otherBoot })).toBe(false);
    expect(isRunning({ ...me, startTime: (me.startTime as number) + 1 })).toBe(false);
    expect(isRunning({ pid: process.pid })).toBe(true); // legacy record: the PID check
    expect(isRunning({ pid: deadPid() })).toBe(false);
    expect(isRunning({ pid: 0 })).toBe(false);
  });

  it('without procfs (or its boot id), falls back to the PID check', () => {
    const fake = mkdtempSync(join(tmpdir(), 'hv-proc-'));
    try {
      const rec = { pid: process.pid, bootId: otherBoot, startTime: 1 };
      expect(isRunning(rec, fake)).toBe(true);
      expect(isRunning({ ...rec, pid: deadPid() }, fake)).toBe(false);
      expect(identityOf(process.pid, fake)).toEqual({ pid: process.pid });
      // A fake procfs: boot id and a stat whose comm holds ")".
      mkdirSync(join(fake, 'sys/kernel/random'), { recursive: true });
      writeFileSync(join(fake, 'sys/kernel/random/boot_id'), `${otherBoot}\n`);
      mkdirSync(join(fake, String(process.pid)));
      writeFileSync(join(fake, String(process.pid), 'stat'), stat('node) (x', 4321));
      expect(identityOf(process.pid, fake)).toEqual({ pid: process.pid, bootId: otherBoot, startTime: 4321 });
      expect(isRunning({ pid: process.pid, bootId: otherBoot, startTime: 4321 }, fake)).toBe(true);
      expect(isRunning({ pid: process.pid, bootId: otherBoot, startTime: 4322 }, fake)).toBe(false);
      expect(isRunning({ pid: process.pid, bootId: bootId, startTime: 4321 }, fake)).toBe(false);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  });

  it('a notification delivery claim of a previous boot or a reused PID is taken over; a live one is not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hv-outbox-'));
    try {
      const outbox = new Outbox(dir);
      const lock = join(dir, 'locks', 'd1.lock');
      const release = outbox.claim('d1', 60_000);
      expect(release).not.toBeNull();
      const [pid, boot, start] = readFileSync(lock, 'utf8').trim().split(' ');
      expect([Number(pid), boot]).toEqual([process.pid, bootId]);
      expect(outbox.claim('d1', 60_000)).toBeNull(); // held by a live process: this one
      release?.();
      const me = selfIdentity();
      writeFileSync(lock, `${process.pid} ${otherBoot} ${start}\n`);
      expect(outbox.claim('d1', 60_000)).not.toBeNull();
      writeFileSync(lock, `${process.pid} ${bootId} ${(me.startTime as number) + 7}\n`);
      expect(outbox.claim('d1', 60_000)).not.toBeNull();
      writeFileSync(lock, `${process.pid}\n`); // an older hv's claim of a live PID
      expect(outbox.claim('d1', 60_000)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the operation lock on a real Nix', () => {
  let world: World;
  let lockPath: string;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    world = new World({ branches: ['nixos-24.05'] });
    lockPath = join(world.paths.state, 'operation.lock');
  });
  afterAll(() => world.cleanup());
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    rmSync(lockPath, { force: true });
  });

  const writeLock = (rec: Record<string, unknown>) =>
    writeFileSync(
      lockPath,
      JSON.stringify({ operation: 'system-upgrade', since: '2024-05-01T03:00:00.000Z', by: 'root', ...rec }),
    );
  /** A live process that has nothing to do with hv. */
  const unrelated = () => {
    const c = spawn('sleep', ['120'], { stdio: 'ignore' });
    children.push(c);
    return c.pid as number;
  };

  it('a lock from before a reboot naming a live unrelated PID does not block, and is gone afterwards', () => {
    const pid = unrelated();
    // The very start time of that live process: only the boot differs.
    writeLock({ pid, bootId: otherBoot, startTime: identityOf(pid).startTime });
    const r = world.hv(['check-updates']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/holds the lock/);
    expect(existsSync(lockPath)).toBe(false);

    writeLock({ pid: process.pid, bootId: otherBoot, startTime: selfIdentity().startTime });
    const again = world.hv(['check-updates']);
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(lockPath)).toBe(false);
  });

  it('a lock of this boot whose PID now names a process started at another time (PID reuse) does not block', () => {
    const pid = unrelated();
    writeLock({ pid, bootId, startTime: (identityOf(pid).startTime as number) - 100 });
    const r = world.hv(['check-updates']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(lockPath)).toBe(false);
  });

  it('a lock of this boot naming a live process with its start time blocks with exit 4 naming the holder', () => {
    const pid = unrelated();
    writeLock({ pid, bootId, startTime: identityOf(pid).startTime });
    const r = world.hv(['check-updates']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`system-upgrade since 2024-05-01T03:00:00.000Z by root (pid ${pid})`);
    expect(existsSync(lockPath)).toBe(true);
  });

  it('a legacy lock (pid only) is recovered when its PID is dead and, with no way to tell, blocks while it is alive', () => {
    writeLock({ pid: deadPid() });
    const r = world.hv(['check-updates']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(lockPath)).toBe(false);

    const pid = unrelated();
    writeLock({ pid });
    const blocked = world.hv(['check-updates']);
    expect(blocked.code).toBe(4);
    expect(blocked.stderr).toContain(`system-upgrade since 2024-05-01T03:00:00.000Z by root (pid ${pid})`);
  });

  it('an upgrade test runs over a lock left by a previous boot', () => {
    writeLock({ pid: unrelated(), bootId: otherBoot, startTime: 1 });
    world.upstream.advance('nixos-24.05');
    const r = world.hv(['upgrade-test', '--json'], { timeoutMs: 170_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.status).toBe('passed');
    expect(existsSync(lockPath)).toBe(false);
  }, 180_000);
});

describe('a lock held by a running hv', () => {
  let world: World | undefined;
  afterEach(() => {
    world?.cleanup();
    world = undefined;
  });

  it('a second upgrade-test gets exit 4 naming the running one; the lock records its boot id and start time', async () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    w.upstream.advance('nixos-24.05', { sleepSec: 20 });
    const first = w.startHv(['upgrade-test']);
    const pid = first.proc.pid as number;
    const deadline = Date.now() + 120_000;
    // Wait until switch-to-configuration runs (it sleeps there, holding the lock).
    while (w.activations().length === 0 && Date.now() < deadline) await sleep(200);
    expect(w.activations(), first.output()).toHaveLength(1);

    const held = JSON.parse(w.read(join(w.paths.state, 'operation.lock')));
    expect(held).toMatchObject({ pid, operation: 'upgrade-test', bootId });
    expect(held.startTime).toBe(identityOf(pid).startTime);

    const second = w.hv(['upgrade-test']);
    expect(second.code, second.stderr).toBe(4);
    expect(second.stderr).toMatch(
      new RegExp(`holds the lock: upgrade-test since \\d{4}-\\d\\d-\\d\\dT\\S+ by \\S+ \\(pid ${pid}\\)`),
    );
    const check = w.hv(['check-updates']);
    expect(check.code).toBe(4);
    // The running test was left alone and finishes normally.
    expect(await first.exited, first.output()).toBe(0);
    expect(existsSync(join(w.paths.state, 'operation.lock'))).toBe(false);
  }, 180_000);
});

describe('an interrupted upgrade test of a previous boot', () => {
  let world: World | undefined;
  afterEach(() => {
    world?.cleanup();
    world = undefined;
  });

  it('is recovered although its PID now names a live process; a marker of a live test is left alone', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const marker = join(w.paths.state, 'upgrade-test-in-progress.json');
    const previous = realpathSync(w.paths.currentSystem);
    const result = { status: 'failed', startedAt: new Date().toISOString(), input: 'nixpkgs', checks: [] };
    const write = (identity: Record<string, unknown>) =>
      writeFileSync(
        marker,
        JSON.stringify({
          ...identity,
          startedAt: result.startedAt,
          by: 'root',
          toplevel: '/nix/store/00000000000000000000000000000000-nixos-system-hv01-untested',
          previousSystem: previous,
          previousGeneration: 1,
          result,
        }),
      );
    // This very process, with its boot id and start time: a test still running.
    write({ ...selfIdentity() });
    expect(w.hv(['status']).code).toBe(0);
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(w.paths.testJson)).toBe(false);

    // The same PID and start time, but written in a previous boot.
    write({ ...selfIdentity(), bootId: otherBoot });
    const s = w.hv(['status']);
    expect(s.code, s.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(JSON.parse(w.read(w.paths.testJson))).toMatchObject({
      status: 'failed',
      reason: 'interrupted',
      reverted: false,
    });
    expect(w.activations()).toEqual([]);
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
  });
});
