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
    ...nixFiles(join(repoRoot, 'test/nix')).filter((f) => !f.includes('/test/nix/vendor/')),
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

describe("nix/module.nix under nixpkgs' module system", () => {
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

  it('renders the SPEC configuration shape with defaults and no nulls; no host unless set (hv finds it)', async () => {
    const json = await evalModuleConfigJson(`{ networking.hostName = "hv01"; ${enabled().slice(1)}`);
    expect(json).not.toContain('null');
    expect(JSON.parse(json)).toEqual({
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
      // The chat process runs as its own service (hv-chat), not started by the engine.
      chatops: {
        user: 'hv-chat',
        socket: '/run/hypervisor/chat.sock',
        stateDir: '/var/lib/hv-chat',
        supervise: 'systemd',
      },
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
    expect(config.chatops).toEqual({
      roles: { 'slack:T1:U2': 'admin' },
      user: 'hv-chat',
      socket: '/run/hypervisor/chat.sock',
      stateDir: '/var/lib/hv-chat',
      supervise: 'systemd',
    });
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

  it('installs the commands, creates /etc/motd.d and makes login show it', async () => {
    const result = await evalModule(`{ services.openssh.enable = true; ${enabled().slice(1)}`);
    expect(result.systemPackages.map((p) => p.name)).toEqual(['hv-commands-hvu']);
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

  it('manual mode (enable = false, the default): commands and /etc/hv/config.json, no daemon, no timer', async () => {
    for (const user of ['{ }', '{ hypervisor.updateChecker.enable = false; }']) {
      const result = await evalModule(user);
      expect(result.service, user).toBeNull();
      expect(result.timers, user).toEqual([]);
      expect(result.systemPackages.map((p) => p.name)).toEqual(['hv-commands-hvu']);
      const script = result.systemPackages[0]!.buildCommand!;
      for (const alias of ['hv-check-updates', 'hv-upgrade-test', 'hv-system-upgrade']) {
        expect(script).toContain(`ln -s ${result.package.storePath}/bin/${alias} $out/bin/${alias}`);
      }
      expect(script).toContain(`exec ${result.package.storePath}/bin/hv "$@"`);
      // hv can check by hand: the same configuration the daemon would read, and its directories.
      expect(JSON.parse(result.configJson!)).toMatchObject({ flake: { dir: '/etc/hypervisor' } });
      expect(result.tmpfiles).toContain('d /var/lib/hypervisor 0700 root root -');
      expect(result.tmpfiles).toContain('d /var/log/hypervisor 0700 root root -');
      expect(result.pam.login?.['hv-motd-dir']?.enable).toBe(true);
    }
  });

  it('installs nothing with install = false, and refuses a daemon without the installation', async () => {
    const result = await evalModule('{ hypervisor.updateChecker.install = false; }');
    expect(result.service).toBeNull();
    expect(result.configJson).toBeNull();
    expect(result.systemPackages).toEqual([]);
    expect(result.tmpfiles).toEqual([]);
    expect(result.pam.login?.['hv-motd-dir']).toBeUndefined();
    await expect(evalModuleConfigJson('{ hypervisor.updateChecker.install = false; }')).rejects.toThrow(
      /installed/,
    );
    await expect(
      evalModule('{ hypervisor.updateChecker = { install = false; enable = true; }; }'),
    ).rejects.toThrow(
      /hypervisor\.updateChecker\.enable = true needs hypervisor\.updateChecker\.install = true/,
    );
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
    await expect(evalModule(enabled('host = "my host";'))).rejects.toThrow(
      /hypervisor\.updateChecker\.host must name nixosConfigurations/,
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
    expect(result.systemPackages.map((p) => p.name).sort()).toEqual(['git', 'hv-commands-hvu']);
    expect(result.tmpfiles.some((r) => r.includes('/never'))).toBe(false);
    await expect(
      evalModule(
        `{ hypervisor.updateChecker.enable = true; systemd.services.hv-daemon.serviceConfig.Type = "notify"; }`,
      ),
    ).rejects.toThrow(/has conflicting definition values/);
  });
});

describe('hypervisor.updateChecker.commandName', () => {
  const mainCommand = (result: Awaited<ReturnType<typeof evalModule>>) => {
    const commands = result.systemPackages.find((p) => p.name.startsWith('hv-commands-'))!;
    return { commands, script: commands.buildCommand! };
  };

  it("defaults to hvu, which does not hide Hyper-NixOS's own hv; the daemon is told the name", async () => {
    const result = await evalModule(enabled());
    const { commands, script } = mainCommand(result);
    expect(commands.mainProgram).toBe('hvu');
    expect(script).toContain("cat > $out/bin/hvu <<'EOF'");
    expect(script).toContain(`HV_COMMAND_NAME=hvu exec ${result.package.storePath}/bin/hv "$@"`);
    expect(script).not.toMatch(/\$out\/bin\/hv[ \n]/);
    expect(result.service!.environment.HV_COMMAND_NAME).toBe('hvu');
    // The daemon itself runs the package's own bin/hv, whatever the command is called.
    expect(result.service!.serviceConfig.ExecStart).toBe(
      `${result.package.storePath}/bin/hv daemon --config /etc/hv/config.json`,
    );
  });

  it('renamed: the wrapper installs that name and the aliases keep theirs', async () => {
    const result = await evalModule(enabled('commandName = "hv";'));
    const { commands, script } = mainCommand(result);
    expect(commands.mainProgram).toBe('hv');
    expect(script).toContain("cat > $out/bin/hv <<'EOF'");
    expect(script).toContain('HV_COMMAND_NAME=hv exec');
    expect(script).toContain('$out/bin/hv-upgrade-test');
    expect(script).not.toContain('$out/bin/hvu');
    expect(result.service!.environment.HV_COMMAND_NAME).toBe('hv');
  });

  it("fails evaluation, naming the option, when another package provides the command (Hyper-NixOS's hv)", async () => {
    // Hyper-NixOS builds its dispatcher with writeScriptBin "hv": a package named "hv".
    const hyperNixosHv = `(pkgs.writeText "hv" "#!/bin/sh")`;
    const clash = `{ pkgs, ... }: {
      environment.systemPackages = [ ${hyperNixosHv} ];
      hypervisor.updateChecker = { enable = true; commandName = "hv"; };
    }`;
    await expect(evalModule(clash)).rejects.toThrow(
      /Failed assertions:[\s\S]*hypervisor\.updateChecker\.commandName is "hv", but environment\.systemPackages also has "hv"/,
    );
    // A package whose meta.mainProgram is the name counts too, in manual mode as well.
    await expect(
      evalModule(`{ pkgs, ... }: {
        environment.systemPackages = [ (pkgs.writeText "tool-1.0" "" // { meta.mainProgram = "hvu"; }) ];
      }`),
    ).rejects.toThrow(/hypervisor\.updateChecker\.commandName is "hvu"/);
    // With the default name the same host evaluates, and keeps its hv.
    const ok = await evalModule(`{ pkgs, ... }: {
      environment.systemPackages = [ ${hyperNixosHv} ];
      hypervisor.updateChecker.enable = true;
    }`);
    expect(ok.systemPackages.map((p) => p.name).sort()).toEqual(['hv', 'hv-commands-hvu']);
  });

  it('rejects an alias name and names that are not command names', async () => {
    await expect(evalModule(enabled('commandName = "hv-upgrade-test";'))).rejects.toThrow(
      /hypervisor\.updateChecker\.commandName is "hv-upgrade-test", the name of one of hv's aliases/,
    );
    await expect(evalModule(enabled('commandName = "../hv";'))).rejects.toThrow(
      /hypervisor\.updateChecker\.commandName' is not of type/,
    );
  });
});

describe('nix/tests/vm-test.nix', () => {
  it('node configuration evaluates against the module (the VM itself needs nixpkgs and KVM)', async () => {
    const result = (await nixEval('test/nix/eval-vm-test.nix')) as {
      execStart: string;
      chatExecStart: string | null;
      configJson: string;
      commands: string[];
      failedAssertions: string[];
      testScript: string;
      manual: { hasService: boolean; hasConfig: boolean; commands: string[] };
    };
    expect(result.failedAssertions).toEqual([]);
    expect(result.execStart).toMatch(/\/bin\/hv daemon/);
    // The machine has a Discord channel: its chat process runs as hv-chat.service.
    expect(result.chatExecStart).toMatch(/\/libexec\/hv\/hv-chat --socket \/run\/hypervisor\/chat\.sock$/);
    expect(result.testScript).toContain("ss -Hltnup | grep -F 'pid={pid},'");
    expect(JSON.parse(result.configJson)).toMatchObject({ host: 'hv01', schedule: 'Mon *-*-* 02:00:00' });
    expect(result.commands.join('\n')).toContain('$out/bin/hvu');
    expect(result.testScript).toContain('hvu status --json');
    // The manual-mode node: commands (named hv there) and configuration, no daemon.
    expect(result.manual).toMatchObject({ hasService: false, hasConfig: true });
    expect(result.manual.commands.join('\n')).toContain("cat > $out/bin/hv <<'EOF'");
    expect(result.testScript).toContain('manual.fail("systemctl cat hv-daemon.service")');
  });
});
