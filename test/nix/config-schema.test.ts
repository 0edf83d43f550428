import { describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { parseConfig } from '../../src/config/load.js';
import { evalModuleConfigJson } from './eval-module.js';

// One source of truth: the JSON the NixOS module renders must pass hv's own config validation.
describe('NixOS module config JSON against the TypeScript schema', () => {
  it('a minimal enabled module validates', async () => {
    const json = await evalModuleConfigJson(
      '{ hypervisor.updateChecker = { enable = true; schedule = "Mon *-*-* 02:00:00"; }; }',
    );
    const config = parseConfig(JSON.parse(json), channelTypes);
    expect(config.schedule).toBe('Mon *-*-* 02:00:00');
    expect(config.flake.dir).toBe('/etc/hypervisor');
  });

  it('an example with every channel, health checks, chat-ops and settings validates', async () => {
    const json = await evalModuleConfigJson(`{
      hypervisor.updateChecker = {
        enable = true;
        host = "hv01";
        schedule = "*-*-01 03:00:00";
        randomizedDelaySec = 600;
        flakeDir = "/etc/hypervisor";
        healthChecks.services = [ "libvirtd" "sshd" ];
        healthChecks.commands = [ { name = "menu"; argv = [ "systemctl" "is-active" "hypervisor-menu" ]; timeoutSec = 30; } ];
        notify.channels = [
          { type = "motd"; }
          { type = "wall"; command = [ "wall" "-g" "wheel" ]; }
          { type = "email"; name = "ops-mail"; from = "hv@hv01.example.org"; to = [ "ops@example.org" ];
            smtp = { host = "smtp.example.org"; port = 587; user = "hv"; passwordFile = "/run/secrets/smtp"; };
            events = [ "update.available" "test.failed" ]; digest = "weekly"; }
          { type = "slack"; mode = "socket"; botTokenFile = "/run/secrets/slack-bot"; appTokenFile = "/run/secrets/slack-app"; channel = "C0123OPS"; }
          { type = "discord"; tokenFile = "/run/secrets/discord"; applicationId = "123"; guildId = "456"; channelId = "789"; }
        ];
        chatops = { roles = { "slack:T0123:U0456" = "admin"; "discord:role:2222" = "viewer"; }; approvals.system-upgrade = 2; };
        settings = { test.maxAgeDays = 3; apply.operation = "boot"; };
      };
    }`);
    const config = parseConfig(JSON.parse(json), channelTypes);
    expect(config.notify.channels.map((c) => c.name)).toEqual([
      'motd',
      'wall',
      'ops-mail',
      'slack',
      'discord',
    ]);
    expect(config.test.maxAgeDays).toBe(3);
    expect(config.apply.operation).toBe('boot');
    expect(config.chatops.approvals['system-upgrade']).toBe(2);
  });

  it('the dead-man window (confirm.*) renders apply.confirm, confirmWithinSec and probes without nulls', async () => {
    const json = await evalModuleConfigJson(`{
      hypervisor.updateChecker = {
        enable = true;
        confirm = {
          require = [ "probes" "human" ];
          withinSec = 90;
          probes = [ { argv = [ "ping" "-c1" "-W2" "10.0.0.1" ]; } { tcp = "10.0.0.1:22"; timeoutSec = 3; } ];
        };
      };
    }`);
    const config = parseConfig(JSON.parse(json), channelTypes);
    expect(config.apply).toEqual({
      operation: 'switch',
      confirm: ['probes', 'human'],
      confirmWithinSec: 90,
      probes: [
        { argv: ['ping', '-c1', '-W2', '10.0.0.1'], timeoutSec: 5 },
        { tcp: '10.0.0.1:22', timeoutSec: 3 },
      ],
    });
    // Off by default: nothing rendered, hv's defaults apply.
    const off = JSON.parse(await evalModuleConfigJson('{ hypervisor.updateChecker.enable = true; }'));
    expect(off.apply).toEqual({ operation: 'switch' });
  });

  it('a module setting hv does not know is caught by the same validation', async () => {
    const json = await evalModuleConfigJson(
      '{ hypervisor.updateChecker = { enable = true; settings.colour = "blue"; }; }',
    );
    expect(() => parseConfig(JSON.parse(json), channelTypes)).toThrow(/colour: unknown key/);
  });
});
