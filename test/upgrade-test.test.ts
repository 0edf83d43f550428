import { existsSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyActivation, classifyBuild } from '../src/engine/guidance.js';
import { buildArgv, parseBuildOutput, updateInputArgv } from '../src/engine/nix.js';
import { snapshot, World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const generations = (w: World) =>
  readlinkSync(w.paths.profile) && JSON.stringify(w.hv(['status', '--json']).json.generations);

type Checks = { checks: { name: string; ok: boolean; output: string }[] };
const check = (res: Checks, name: string) => res.checks.find((c) => c.name === name);

/** Assertions shared by the failure scenarios: what must hold after any failed test. */
function failures(w: World) {
  const previous = realpathSync(w.paths.currentSystem);
  const lock = readFileSync(join(w.flakeDir, 'flake.lock'));
  const failed = (step: string) => {
    const r = w.hv(['upgrade-test', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(1);
    expect(r.json.status).toBe('failed');
    expect(r.json.failedStep).toBe(step);
    expect(w.read(w.paths.testText).split('\n')[0]).toBe('Upgrade Test: FAILED');
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    expect(readFileSync(join(w.flakeDir, 'flake.lock')).equals(lock)).toBe(true);
    expect(readlinkSync(w.paths.profile)).toBe('system-1-link');
    expect(existsSync(join(w.paths.state, 'upgrade-test-in-progress.json'))).toBe(false);
    return { r, res: JSON.parse(w.read(w.paths.testJson)), text: w.read(w.paths.testText) };
  };
  const reverted = (res: { toplevel: string; reverted: boolean }) => {
    expect(res.reverted).toBe(true);
    expect(w.activations().slice(-2)).toEqual([
      { action: 'test', path: res.toplevel },
      { action: 'test', path: previous },
    ]);
  };
  return { failed, reverted };
}

describe('hv upgrade-test on a real Nix', () => {
  it('passing test: activates only the new toplevel with "test", persists nothing, records PASSED', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const previous = realpathSync(w.paths.currentSystem);
    const lockBefore = readFileSync(join(w.flakeDir, 'flake.lock'));
    const flakeBefore = snapshot(w.flakeDir);
    const gensBefore = generations(w);
    const newRev = w.upstream.advance('nixos-24.05');
    const r = w.hv(['upgrade-test', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.status).toBe('passed');
    const top = r.json.toplevel as string;
    expect(top).toMatch(/^\/nix\/store\/.*nixos-system-hv01-24\.05\.2$/);
    expect(w.activations()).toEqual([{ action: 'test', path: top }]);
    expect(realpathSync(w.paths.currentSystem)).toBe(top);
    expect(generations(w)).toBe(gensBefore);
    expect(readFileSync(join(w.flakeDir, 'flake.lock')).equals(lockBefore)).toBe(true);
    expect(snapshot(w.flakeDir)).toEqual(flakeBefore);
    const text = w.read(w.paths.testText);
    expect(text.split('\n')[0]).toBe('Upgrade Test: PASSED');
    const res = JSON.parse(w.read(w.paths.testJson));
    expect(res).toMatchObject({
      status: 'passed',
      toplevel: top,
      previousSystem: previous,
      newRev,
      reverted: false,
    });
    expect(res.previousGeneration).toBe(1);
    expect(JSON.parse(res.testedLock).nodes.nixpkgs.locked.rev).toBe(newRev);
    expect(res.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    expect(existsSync(join(w.paths.state, 'upgrade-test-in-progress.json'))).toBe(false);
    expect(w.read(join(w.paths.log, 'upgrade-test.log'))).toContain('build finished');
    expect(w.wallMessages().some((m) => /PASSED/.test(m))).toBe(true);
  });

  it('build and evaluation failures: exit 1, FAILED with the error and guidance, nothing activated', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const { failed } = failures(w);
    w.upstream.advance('nixos-24.05', { buildFail: true });
    const build = failed('build');
    expect(build.res.error).toMatch(/fake compile error/);
    expect(build.res.guidance).toMatch(/df -h \/nix/);
    expect(build.res.guidance).toMatch(/nix-collect-garbage/);
    expect(build.text).toMatch(/fake compile error[\s\S]*df -h \/nix/);
    expect(build.res.reverted).toBe(false);
    expect(w.activations()).toEqual([]);
    expect(w.read(join(w.paths.log, 'upgrade-test.log'))).toMatch(/fake compile error/);

    w.upstream.advance('nixos-24.05', {
      buildFail: false,
      evalError: "The option `services.libvirtd.qemuOvmf' has been removed.",
    });
    const evaluation = failed('evaluate');
    expect(evaluation.res.error).toMatch(/qemuOvmf' has been removed/);
    expect(evaluation.res.guidance).toMatch(/removed or renamed.*release notes/);
    expect(w.activations()).toEqual([]);
    expect(w.wallMessages().filter((m) => /FAILED/.test(m))).toHaveLength(2);
  });

  it('activation exit 4, a failed service, a VM gone: exit 1, FAILED, previous system re-activated', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const { failed, reverted } = failures(w);
    w.upstream.advance('nixos-24.05', { activationExit: 4, failedUnits: ['hypervisor-menu.service'] });
    const act = failed('activate');
    reverted(act.res);
    expect(act.res.error).toMatch(/failed units: hypervisor-menu\.service/);
    expect(act.res.guidance).toMatch(/journalctl -b -u hypervisor-menu\.service/);
    expect(act.r.stderr + act.r.json.message).toMatch(/re-activated/);

    w.upstream.advance('nixos-24.05', { activationExit: 0, failedUnits: ['libvirtd.service'] });
    const svc = failed('health-check');
    reverted(svc.res);
    expect(check(svc.res, 'service libvirtd')).toMatchObject({ ok: false });
    expect(check(svc.res, 'no newly failed units')?.output).toMatch(/libvirtd\.service/);

    w.upstream.advance('nixos-24.05', { failedUnits: [], vms: ['vm-web'] });
    const vm = failed('health-check');
    reverted(vm.res);
    expect(check(vm.res, 'VMs still running')).toMatchObject({ ok: false });
    expect(check(vm.res, 'VMs still running')?.output).toMatch(/no longer running: vm-db/);
    expect(check(vm.res, 'service libvirtd')?.ok).toBe(true);
  });

  it('a failing or hanging custom check reverts; a new kernel with exit 100 passes and says a reboot is needed', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const { failed, reverted } = failures(w);
    w.upstream.advance('nixos-24.05');
    const hc = (w.config.test as { healthChecks: Record<string, unknown> }).healthChecks;
    hc.commands = [
      { name: 'menu', argv: ['sh', '-c', 'echo menu down; exit 3'], timeoutSec: 10 },
      { name: 'slow', argv: ['sleep', '5'], timeoutSec: 1 },
    ];
    w.writeConfig();
    const cmd = failed('health-check');
    reverted(cmd.res);
    expect(check(cmd.res, 'command menu')).toMatchObject({ ok: false, output: 'menu down' });
    expect(check(cmd.res, 'command slow')?.output).toMatch(/timed out after 1s/);

    // Reboot awareness: a new kernel and exit 100 (reboot required) is a pass, not a crash.
    hc.commands = [{ name: 'menu', argv: ['true'], timeoutSec: 10 }];
    w.writeConfig();
    w.upstream.advance('nixos-24.05', { kernel: '6.6.9', activationExit: 100 });
    const r = w.hv(['upgrade-test', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.rebootRequired).toBe(true);
    expect(r.json.rebootParts).toEqual(['kernel', 'initrd', 'kernel-modules']);
    expect(check(r.json, 'command menu')?.ok).toBe(true);
    // A reboot would drop the test activation: the advice is to apply first, then reboot.
    expect(w.read(w.paths.testText)).toMatch(/kernel.*takes? effect after "hv system-upgrade" and a reboot/);
    expect(r.stdout + r.stderr).not.toMatch(/Reboot required to finish/);
    const status = w.hv(['status', '--json']);
    expect(status.json.rebootRequired).toBe(true);
    expect(status.json.lastTest.status).toBe('passed');
  });

  it('downgrade guard: an older revision or a lower release is refused (exit 3) before anything is activated; --allow-downgrade is audited', () => {
    world = new World({ branches: ['nixos-24.11', 'nixos-24.05'] });
    const w = world;
    const previous = realpathSync(w.paths.currentSystem);
    w.upstream.advance('nixos-24.11', {}, { date: new Date(Date.now() - 40 * 86_400_000) });
    const older = w.hv(['upgrade-test', '--json']);
    expect(older.code, older.stderr).toBe(3);
    expect(older.json.status).toBe('refused');
    expect(older.json.message).toMatch(/downgrade.*older than the locked/);
    expect(w.activations()).toEqual([]);
    expect(existsSync(w.paths.testJson)).toBe(false);

    // Tracking a lower release: the new system would be 24.05 on a 24.11 host.
    const flakeNix = join(w.flakeDir, 'flake.nix');
    writeFileSync(flakeNix, w.read(flakeNix).replace('ref=nixos-24.11', 'ref=nixos-24.05'));
    const lower = w.hv(['upgrade-test', '--json']);
    expect(lower.code, lower.stderr).toBe(3);
    expect(lower.json.message).toMatch(/release 24\.05, lower than the running 24\.11/);
    expect(w.activations()).toEqual([]);
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);

    const allowed = w.hv(['upgrade-test', '--allow-downgrade', '--json']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.json.downgradeAllowed).toBe(true);
    expect(allowed.json.version).toMatch(/^24\.05/);
    const audit = w
      .read(w.paths.audit)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.some((a) => a.operation === 'upgrade-test' && a.result === 'downgrade-allowed')).toBe(true);
    expect(audit.some((a) => a.operation === 'upgrade-test' && a.args?.allowDowngrade === true)).toBe(true);
  });
});

describe('Nix version differences', () => {
  it('updates one input with "flake lock --update-input" before 2.19 and "flake update <input>" since', () => {
    const v = (major: number, minor: number) => ({ major, minor, text: `${major}.${minor}` });
    expect(updateInputArgv(v(2, 8), 'nix', [], '/s', 'nixpkgs')).toEqual([
      'nix',
      'flake',
      'lock',
      '/s',
      '--update-input',
      'nixpkgs',
      '--refresh',
    ]);
    expect(updateInputArgv(v(2, 18), 'nix', [], '/s', 'nixpkgs')).toContain('--update-input');
    for (const ver of [v(2, 19), v(2, 24), v(3, 0)])
      expect(updateInputArgv(ver, 'nix', ['--option', 'x', 'y'], '/s', 'nixpkgs')).toEqual([
        'nix',
        '--option',
        'x',
        'y',
        'flake',
        'update',
        'nixpkgs',
        '--flake',
        '/s',
        '--refresh',
      ]);
    // --print-out-paths is missing before 2.10: always --json.
    expect(buildArgv('nix', [], 'i')).not.toContain('--print-out-paths');
    expect(parseBuildOutput('[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b"}}]\n')).toBe(
      '/nix/store/b',
    );
    expect(parseBuildOutput('')).toBeUndefined();
  });

  it('classifies build output for guidance', () => {
    expect(classifyBuild("error: builder for '/nix/store/x.drv' failed with exit code 2")).toBe('build');
    expect(classifyBuild('error: unable to download https://cache.nixos.org/x: HTTP error 503')).toBe(
      'download',
    );
    expect(classifyBuild("error: The option `services.foo' does not exist.")).toBe('evaluation');
    expect(classifyBuild("error: undefined variable 'qemuOvmf' at /etc/hypervisor/vm.nix:3:5")).toBe(
      'evaluation',
    );
    expect(classifyActivation('mount: /boot: special device /dev/sda1 does not exist.')).toBe('hardware');
    expect(classifyActivation('warning: the following units failed: libvirtd.service')).toBe('activation');
    expect(classifyBuild('error: The option `fileSystems."/".device\' is used but not defined.')).toBe(
      'hardware',
    );
  });
});
