import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../src/schedule/index.js';
import { evalModule, evalModuleConfigJson, nixEval, repoRoot } from './eval-module.js';

function nixFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return nixFiles(path);
    return entry.name.endsWith('.nix') ? [path] : [];
  });
}

const enabled = (extra = '') => `{ hypervisor.updateChecker = { enable = true; ${extra} }; }`;

describe('nix files', () => {
  const files = [
    join(repoRoot, 'flake.nix'),
    ...nixFiles(join(repoRoot, 'nix')),
    ...nixFiles(join(repoRoot, 'test/nix')),
  ];

  it('include the module, the package and the VM test', () => {
    const names = files.map((f) => relative(repoRoot, f));
    expect(names).toEqual(
      expect.arrayContaining(['nix/module.nix', 'nix/package.nix', 'nix/tests/vm-test.nix']),
    );
  });

  it.each(files.map((f) => [relative(repoRoot, f), f]))('%s parses', (_name, file) => {
    execFileSync('nix-instantiate', ['--parse', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  });
});

describe('nix/module.nix under the module system', () => {
  it('enabled with a schedule: hv-daemon runs `hv daemon`, survives activations, config has the schedule', async () => {
    const result = await evalModule(enabled('schedule = "Mon *-*-* 02:00:00";'));
    const service = result.service!;
    expect(service.serviceConfig.ExecStart).toMatch(/^\/nix\/store\/[^ ]+-hv-[^ /]+\/bin\/hv daemon( |$)/);
    expect(service.restartIfChanged).toBe(false);
    expect(service.wantedBy).toContain('multi-user.target');
    expect(service.wants).toContain('network-online.target');
    expect(service.after).toContain('network-online.target');
    const config = JSON.parse(result.configJson!) as Record<string, unknown>;
    expect(config.schedule).toBe('Mon *-*-* 02:00:00');
    expect(parseSchedule(config.schedule as string).cron).toBe('0 2 * * 1');
  });

  it('renders the SPEC configuration shape with defaults and no nulls', async () => {
    const json = await evalModuleConfigJson(`{ networking.hostName = "hv01"; ${enabled().slice(1)}`);
    expect(json).not.toContain('null');
    expect(JSON.parse(json)).toEqual({
      host: 'hv01',
      flake: { dir: '/etc/hypervisor', input: 'nixpkgs' },
      paths: {
        state: '/var/lib/hypervisor',
        log: '/var/log/hypervisor',
        motd: '/etc/motd.d/updates-available',
        gcRoots: '/nix/var/nix/gcroots/hypervisor',
      },
      test: { maxAgeDays: 7, healthChecks: { services: ['libvirtd'], commands: [] } },
      apply: { operation: 'switch' },
      schedule: 'monthly',
      randomizedDelaySec: 3600,
      notify: { channels: [{ type: 'motd' }, { type: 'wall' }] },
    });
  });

  it('renders every option, and merges `settings` last and recursively', async () => {
    const config = JSON.parse(
      await evalModuleConfigJson(`{
        virtualisation.libvirtd.enable = true;
        hypervisor.updateChecker = {
          enable = true;
          host = "hv02"; flakeDir = "/srv/flake"; input = "nixos"; maxAgeDays = 3; applyOperation = "boot";
          randomizedDelaySec = 0;
          healthChecks = {
            services = [ "libvirtd" "sshd" ];
            commands = [ { name = "menu"; argv = [ "systemctl" "is-active" "hypervisor-menu" ]; } ];
          };
          notify.channels = [ { type = "motd"; } { type = "email"; name = "ops"; from = "hv@example.org";
            to = [ "ops@example.org" ]; smtp = { host = "smtp.example.org"; passwordFile = "/run/secrets/smtp"; }; } ];
          chatops.roles."slack:T1:U2" = "admin";
          settings = { notify.reminderDays = 7; flake.input = "nixpkgs"; allowNonRoot = false; };
        };
      }`),
    ) as Record<string, Record<string, unknown>>;
    expect(config.host).toBe('hv02');
    expect(config.flake).toEqual({ dir: '/srv/flake', input: 'nixpkgs' });
    expect(config.test).toEqual({
      maxAgeDays: 3,
      healthChecks: {
        services: ['libvirtd', 'sshd'],
        vms: { command: ['virsh', 'list', '--name', '--state-running'] },
        commands: [{ name: 'menu', argv: ['systemctl', 'is-active', 'hypervisor-menu'], timeoutSec: 30 }],
      },
    });
    expect(config.apply).toEqual({ operation: 'boot' });
    expect(config.randomizedDelaySec).toBe(0);
    expect(config.notify?.reminderDays).toBe(7);
    expect(config.notify?.channels).toHaveLength(2);
    expect(config.chatops).toEqual({ roles: { 'slack:T1:U2': 'admin' } });
    expect(config.allowNonRoot).toBe(false);
  });

  it('checks VMs, with libvirt on the PATH, only when libvirtd is enabled', async () => {
    const without = await evalModule(enabled());
    expect(JSON.parse(without.configJson!).test.healthChecks.vms).toBeUndefined();
    expect(without.service!.path.some((p) => p.endsWith('-libvirt'))).toBe(false);
    const withLibvirt = await evalModule(`{ virtualisation.libvirtd.enable = true; ${enabled().slice(1)}`);
    expect(withLibvirt.service!.path.some((p) => p.endsWith('-libvirt'))).toBe(true);
    for (const tool of ['-nix', '-git', '-util-linux', '-systemd']) {
      expect(
        without.service!.path.some((p) => p.endsWith(tool)),
        tool,
      ).toBe(true);
    }
  });

  it('hardens the service without breaking activation', async () => {
    const { service } = await evalModule(enabled());
    const sc = service!.serviceConfig;
    expect(sc).toMatchObject({
      StateDirectory: 'hypervisor',
      LogsDirectory: 'hypervisor',
      NoNewPrivileges: true,
      KillMode: 'mixed',
    });
    for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectHostname']) {
      expect(sc[key], key).toBeUndefined();
    }
    expect(service!.environment.HV_CONFIG).toBe('/etc/hv/config.json');
    expect(service!.reloadTriggers).toHaveLength(1);
    expect(sc.ExecReload).toMatch(/kill -HUP \$MAINPID$/);
  });

  it('installs the package, creates /etc/motd.d and makes login show it', async () => {
    const result = await evalModule(`{ services.openssh.enable = true; ${enabled().slice(1)}`);
    expect(result.systemPackages.some((p) => /-hv-[0-9.]+$/.test(p))).toBe(true);
    expect(result.tmpfiles).toContain('d /etc/motd.d 0755 root root -');
    for (const service of ['login', 'sshd']) {
      const rules = result.pam[service]!;
      const rule = rules['hv-motd-dir']!;
      expect(rule.enable, service).toBe(true);
      expect(rule.modulePath).toMatch(/\/lib\/security\/pam_motd\.so$/);
      expect(rule.args).toEqual(['motd_dir=/etc/motd.d']);
      expect(rule.order).toBeGreaterThan(rules.motd!.order);
    }
    expect(result.pam.su?.['hv-motd-dir']).toBeUndefined();
    const noSsh = await evalModule(enabled());
    expect(noSsh.pam.sshd).toBeUndefined();
  });

  it('builds hv with buildNpmPackage and Node 22', async () => {
    const { package: pkg } = await evalModule(enabled());
    expect(pkg.pname).toBe('hv');
    expect(pkg.buildArgs.nodejs).toMatch(/-nodejs-22$/);
    expect(pkg.buildArgs.npmDepsHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
  });

  it('does nothing when not enabled', async () => {
    const result = await evalModule('{ }');
    expect(result.service).toBeNull();
    expect(result.configJson).toBeNull();
    expect(result.systemPackages).toEqual([]);
    await expect(evalModuleConfigJson('{ }')).rejects.toThrow(/enabled/);
  });

  it('rejects unknown options, wrong types and inline secrets', async () => {
    await expect(evalModule(enabled('shedule = "weekly";'))).rejects.toThrow(
      /option `hypervisor\.updateChecker\.shedule' does not exist/,
    );
    await expect(evalModule(enabled('applyOperation = "reboot";'))).rejects.toThrow(
      /hypervisor\.updateChecker\.applyOperation' is not of type `one of "switch", "boot"'/,
    );
    await expect(evalModule(enabled('randomizedDelaySec = -1;'))).rejects.toThrow(/randomizedDelaySec/);
    await expect(
      evalModule(enabled('notify.channels = [ { type = "slack"; botToken = "xoxb-123"; } ];')),
    ).rejects.toThrow(/notify\.channels\[0\]\.botToken look like inline secrets/);
    await expect(evalModule(`{ networking.hostName = ""; ${enabled().slice(1)}`)).rejects.toThrow(
      /host must name nixosConfigurations/,
    );
  });

  it('follows module-system priorities and merging (mkDefault, mkForce, mkIf, lists, conflicts)', async () => {
    const result = await evalModule(`{ lib, pkgs, ... }: {
      hypervisor.updateChecker = { enable = true; schedule = lib.mkDefault "daily"; };
      systemd.services.hv-daemon.serviceConfig.Nice = lib.mkForce 0;
      environment.systemPackages = [ pkgs.git ];
      systemd.tmpfiles.rules = lib.mkIf false [ "d /never 0755 root root -" ];
    }`);
    expect(JSON.parse(result.configJson!).schedule).toBe('daily');
    expect(result.service!.serviceConfig.Nice).toBe(0);
    expect(result.systemPackages).toHaveLength(2);
    expect(result.tmpfiles.some((r) => r.includes('/never'))).toBe(false);
    await expect(
      evalModule(
        `{ hypervisor.updateChecker.enable = true; systemd.services.hv-daemon.serviceConfig.Type = "notify"; }`,
      ),
    ).rejects.toThrow(/conflicting definition values/);
  });
});

describe('nix/tests/vm-test.nix', () => {
  it('node configuration evaluates against the module (the VM itself needs nixpkgs and KVM)', async () => {
    const result = (await nixEval('test/nix/eval-vm-test.nix')) as {
      execStart: string;
      configJson: string;
      failedAssertions: string[];
      testScript: string;
    };
    expect(result.failedAssertions).toEqual([]);
    expect(result.execStart).toMatch(/\/bin\/hv daemon/);
    expect(JSON.parse(result.configJson)).toMatchObject({ host: 'hv01', schedule: 'Mon *-*-* 02:00:00' });
    expect(result.testScript).toContain('hv status --json');
  });
});
