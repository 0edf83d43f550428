import { spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { expectKnownState, killed, lockOf } from './fixtures/crash.js';
import { hvBin, World } from './fixtures/world.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let world: World | undefined;
let server: Server | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
  server?.close();
  server = undefined;
});

const windowFile = (w: World) => join(w.paths.state, 'confirm-window.json');

/** A host with the dead-man window configured, and an update upstream. */
function confirmWorld(apply: Record<string, unknown>) {
  world = new World({ branches: ['nixos-24.05'] });
  const w = world;
  w.config.apply = apply;
  w.writeConfig();
  const oldSystem = realpathSync(w.paths.currentSystem);
  const oldLock = lockOf(w);
  w.upstream.advance('nixos-24.05');
  return { w, oldSystem, oldLock };
}

/** A PASSED test of the update, run without a window; then the window is configured. */
function testedWorld(apply: Record<string, unknown>) {
  const { w, oldSystem, oldLock } = confirmWorld({});
  const t = w.hv(['upgrade-test']);
  expect(t.code, t.stderr).toBe(0);
  const tested = JSON.parse(w.read(w.paths.testJson)) as { toplevel: string; testedLock: string };
  w.config.apply = apply;
  w.writeConfig();
  return { w, oldSystem, oldLock, newSystem: tested.toplevel, newLock: tested.testedLock };
}

async function waitFor(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `hv <args> --yes` in its own process group, SIGKILLed (with its children) once the window is open. */
async function killedInWindow(w: World, args: string[]): Promise<string | null> {
  const child = spawn(process.execPath, [hvBin, ...args, '--yes', '--config', w.configPath], {
    detached: true,
    stdio: 'ignore',
  });
  const exited = new Promise<string | null>((r) => child.on('exit', (_c, signal) => r(signal)));
  await waitFor('the confirmation window', () => existsSync(windowFile(w)));
  process.kill(-(child.pid as number), 'SIGKILL');
  return exited;
}

describe('configuration', () => {
  it('"probes" wanted without probes is a config error naming apply.probes', () => {
    const { w } = confirmWorld({ confirm: ['probes'] });
    const r = w.hv(['status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/apply\.probes/);
    expect(r.stderr).toMatch(/apply\.confirm lists "probes"/);
  });

  it('"chat" wanted without a chat channel, a probe without argv or tcp, a bad kind: config errors naming the key', () => {
    const { w } = confirmWorld({ confirm: ['chat'] });
    const chat = w.hv(['status']);
    expect(chat.code).toBe(2);
    expect(chat.stderr).toMatch(/apply\.confirm.*no chat channel/);
    w.config.apply = { confirm: ['probes'], probes: [{ timeoutSec: 2 }] };
    w.writeConfig();
    const probe = w.hv(['status']);
    expect(probe.code).toBe(2);
    expect(probe.stderr).toMatch(/apply\.probes\[0\].*exactly one of "argv".*"tcp"/);
    w.config.apply = { confirm: ['ping'] };
    w.writeConfig();
    const kind = w.hv(['status']);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toMatch(
      /apply\.confirm\[0\]: "ping" is not allowed; must be one of chat, probes, human/,
    );
    w.config.apply = { confirm: ['probes'], probes: [{ tcp: '10.0.0.1' }] };
    w.writeConfig();
    const tcp = w.hv(['status']);
    expect(tcp.code).toBe(2);
    expect(tcp.stderr).toMatch(/apply\.probes\[0\]\.tcp.*host:port/);
  });
});

describe('upgrade-test with a confirmation window', () => {
  it('a failing probe: reverted after the window, FAILED with the probe output', () => {
    const { w, oldSystem } = confirmWorld({
      confirm: ['probes'],
      confirmWithinSec: 3,
      probes: [{ name: 'gateway', argv: ['sh', '-c', 'echo "no route to 10.0.0.1"; exit 1'], timeoutSec: 2 }],
    });
    const started = Date.now();
    const t = w.hv(['upgrade-test']);
    expect(t.code, t.stderr).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(t.stderr).toMatch(
      /FAILED at confirm \(not confirmed within 3 s: the reachability probes did not pass/,
    );
    expect(t.stderr).toMatch(/gateway: exit 1: no route to 10\.0\.0\.1/);
    expect(t.stderr).toMatch(/previous system .* was re-activated/);
    expect(t.stderr).toMatch(/confirmation window open until \d{4}-\d\d-\d\dT/);
    expect(realpathSync(w.paths.currentSystem)).toBe(oldSystem);
    expect(w.activations().map((a) => a.action)).toEqual(['test', 'test']);
    expect(w.activations().at(-1)?.path).toBe(oldSystem);
    const r = JSON.parse(w.read(w.paths.testJson));
    expect(r).toMatchObject({ status: 'failed', failureKind: 'not-confirmed', reverted: true });
    expect(w.wallMessages().some((m) => /Upgrade test FAILED.*not confirmed within 3 s/.test(m))).toBe(true);
    expect(existsSync(windowFile(w))).toBe(false);
  });

  it('a probe that passes (TCP connect) keeps the test activation: PASSED, confirmed by the probes', async () => {
    server = createServer((s) => s.end());
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const { w } = confirmWorld({
      confirm: ['probes'],
      confirmWithinSec: 20,
      probes: [{ tcp: `127.0.0.1:${port}` }],
    });
    const t = await w.hvAsync(['upgrade-test']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/Activation confirmed by reachability probes \(tcp 127\.0\.0\.1:\d+\)/);
    expect(t.ms).toBeLessThan(20_000);
    expect(w.activations().map((a) => a.action)).toEqual(['test']);
  });
});

describe('system-upgrade with a confirmation window', () => {
  it('hv confirm keeps it; the result says who confirmed', async () => {
    const { w, newSystem, newLock } = testedWorld({ confirm: ['human'], confirmWithinSec: 30 });
    const run = w.hvAsync(['system-upgrade', '--yes']);
    await waitFor('the confirmation window', () => existsSync(windowFile(w)));
    const st = await w.hvAsync(['status']);
    expect(st.stdout).toMatch(
      /CONFIRM: +the system-upgrade of \/nix\/store\/\S+ is undone at \S+ unless confirmed by "Keep" in chat or "hv confirm"/,
    );
    const c = await w.hvAsync(['confirm']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/Confirmed: root keeps the system-upgrade activation/);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Activation confirmed by root \(hv confirm by root\)/);
    expectKnownState(w, newSystem, newLock);
    expect(existsSync(windowFile(w))).toBe(false);
    expect(w.read(w.paths.audit)).toMatch(/"operation":"confirm"/);
    expect(w.hv(['confirm']).code).toBe(3);
  });

  it('not confirmed: switched back, profile and lock the previous ones, FAILED with the reason; the test no longer approves it', () => {
    const { w, oldSystem, oldLock } = testedWorld({ confirm: ['human'], confirmWithinSec: 3 });
    const r = w.hv(['system-upgrade', '--yes']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      /System upgrade REVERTED: not confirmed within 3 s: nobody pressed Keep or ran "hv confirm"/,
    );
    expectKnownState(w, oldSystem, oldLock);
    expect(w.activations().map((a) => a.action)).toEqual(['test', 'switch', 'switch']);
    const s = w.hv(['status', '--json']);
    expect(s.json.lastUpgrade).toMatchObject({ status: 'failed', notConfirmed: { ok: true } });
    expect(
      w.wallMessages().some((m) => /System upgrade on hv01 was reverted: not confirmed within 3 s/.test(m)),
    ).toBe(true);
    const again = w.hv(['system-upgrade', '--yes']);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/was undone: not confirmed/);
  });

  it('killed inside the window: the next hv status reverts (previous generation, system and lock) and records why', async () => {
    const { w, oldSystem, oldLock } = testedWorld({ confirm: ['human'], confirmWithinSec: 60 });
    expect(await killedInWindow(w, ['system-upgrade'])).toBe('SIGKILL');
    expect(realpathSync(w.paths.currentSystem)).not.toBe(oldSystem);
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/stopped inside the confirmation window/);
    expectKnownState(w, oldSystem, oldLock);
    expect(s.json.lastUpgrade).toMatchObject({
      status: 'failed',
      interrupted: { step: 'confirm', outcome: 'undone' },
      notConfirmed: { ok: true },
    });
    expect(s.json.lastUpgrade.notConfirmed.reason).toMatch(
      /the engine \(pid \d+\) stopped inside the confirmation window/,
    );
    expect(existsSync(windowFile(w))).toBe(false);
    expect(w.read(w.paths.audit)).toMatch(/stopped inside the confirmation window/);
  });
});

describe('upgrade-test killed inside the window', () => {
  it('the daemon, started again, reverts it and records why', async () => {
    const { w, oldSystem } = confirmWorld({ confirm: ['human'], confirmWithinSec: 60 });
    expect(await killedInWindow(w, ['upgrade-test'])).toBe('SIGKILL');
    expect(realpathSync(w.paths.currentSystem)).not.toBe(oldSystem);
    const daemon = w.startHv(['daemon']);
    await waitFor('the recovered test result', () => existsSync(w.paths.testJson), 60_000);
    await waitFor('the revert', () => realpathSync(w.paths.currentSystem) === oldSystem, 10_000);
    const r = JSON.parse(readFileSync(w.paths.testJson, 'utf8'));
    expect(r).toMatchObject({
      status: 'failed',
      failureKind: 'not-confirmed',
      reverted: true,
      failedStep: 'confirm',
    });
    expect(r.reason).toMatch(/stopped inside the confirmation window/);
    await waitFor('the window to be removed', () => !existsSync(windowFile(w)), 10_000);
    // `hv daemon` recovers before it starts, as every hv command does.
    await waitFor('the daemon to start', () => /daemon started/.test(daemon.output()), 30_000);
    expect(daemon.output()).toMatch(/recovering an interrupted upgrade test/);
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
  });
});

describe('crash-safe revert and rollback', () => {
  it('killed while reverting: the next command finishes the revert with the recorded reason', async () => {
    const { w, oldSystem, oldLock } = testedWorld({ confirm: ['human'], confirmWithinSec: 2 });
    expect(await killed(w, ['system-upgrade'], { crashAt: 'system-upgrade:revert' })).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/interrupted at "revert"/);
    expectKnownState(w, oldSystem, oldLock);
    expect(s.json.lastUpgrade.notConfirmed.reason).toMatch(/^not confirmed within 2 s: nobody pressed Keep/);
    expect(existsSync(windowFile(w))).toBe(false);
  });

  it('a rollback that is not confirmed is undone: the upgraded generation, system and lock run again; the prompt says so', () => {
    const { w, newSystem, newLock } = testedWorld({});
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    w.config.apply = { confirm: ['human'], confirmWithinSec: 2 };
    w.writeConfig();
    const r = w.hv(['rollback', '--yes']);
    expect(r.code, r.stderr).toBe(1);
    // The terminal prompt (--yes prints it) says that a window follows the switch.
    expect(r.stderr).toMatch(
      /Confirmation window: 2 s after the switch; unless confirmed by "Keep" in chat or "hv confirm", the generation, system and flake.lock that run now come back/,
    );
    expect(r.stderr).toMatch(/Rollback to generation 1 REVERTED: not confirmed within 2 s/);
    expectKnownState(w, newSystem, newLock);
    expect(w.activations().map((a) => a.action)).toEqual(['test', 'switch', 'switch', 'switch']);
    const s = w.hv(['status', '--json']);
    expect(s.json.lastRollback).toMatchObject({ status: 'failed', notConfirmed: { ok: true } });
    expect(s.json.lastUpgrade.rolledBackAt).toBeUndefined();
    expect(w.wallMessages().some((m) => /Rollback on hv01 to generation 1 was reverted/.test(m))).toBe(true);
  });

  it('a rollback killed inside its window: the next command goes back to what ran before it', async () => {
    const { w, newSystem, newLock } = testedWorld({});
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    w.config.apply = { confirm: ['human'], confirmWithinSec: 60 };
    w.writeConfig();
    expect(await killedInWindow(w, ['rollback'])).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/rollback .*stopped inside the confirmation window/);
    expectKnownState(w, newSystem, newLock);
  });
});

describe('no confirmation configured', () => {
  it('upgrade-test and system-upgrade open no window', () => {
    const { w } = testedWorld({});
    const r = w.hv(['system-upgrade', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).not.toMatch(/confirmation window/);
    expect(existsSync(windowFile(w))).toBe(false);
    const c = w.hv(['confirm']);
    expect(c.code).toBe(3);
    expect(c.stderr).toMatch(/no confirmation window is open.*apply\.confirm is empty/);
  });
});
