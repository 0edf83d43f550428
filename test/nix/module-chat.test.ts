import { beforeAll, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { parseConfig } from '../../src/config/load.js';
import { evalModule, type ModuleEval } from './eval-module.js';
import { renderUnit, systemdVersion, verifyUnits } from './systemd-unit.js';

// Privilege separation under the NixOS module (issue 13): the chat process as its own sandboxed
// service with its own user and only its own secrets; the engine's unit without network listener.

const slackHttp = `{ type = "slack"; name = "slack-http"; mode = "http"; port = 3100;
  botTokenFile = "/run/secrets/slack-http-bot"; signingSecretFile = "/run/secrets/slack-signing"; channel = "C0HTTP"; }`;
const slackSocket = `{ type = "slack"; mode = "socket"; channel = "C0OPS";
  botTokenFile = "/run/secrets/slack-bot"; appTokenFile = "/run/secrets/slack-app"; }`;
const discord = `{ type = "discord"; tokenFile = "/run/secrets/discord"; applicationId = "111"; guildId = "222"; channelId = "333"; }`;
const smtpMail = `{ type = "email"; name = "ops-mail"; from = "hv@example.org"; to = [ "ops@example.org" ];
  smtp = { host = "smtp.example.org"; port = 587; user = "hv"; passwordFile = "/run/secrets/smtp"; }; }`;

const host = (channels: string, extra = '') =>
  `{ hypervisor.updateChecker = { enable = true; notify.channels = [ { type = "motd"; } ${channels} ]; ${extra} }; }`;

/** Every key of the chat service's sandbox, with the value the module must give it. */
const chatSandbox = {
  ProtectSystem: 'strict',
  ProtectHome: true,
  PrivateTmp: true,
  PrivateDevices: true,
  NoNewPrivileges: true,
  ProtectKernelTunables: true,
  ProtectKernelModules: true,
  ProtectKernelLogs: true,
  ProtectControlGroups: true,
  RestrictNamespaces: true,
  RestrictRealtime: true,
  LockPersonality: true,
  MemoryDenyWriteExecute: false,
  RestrictAddressFamilies: ['AF_UNIX', 'AF_INET', 'AF_INET6'],
  MemoryMax: '256M',
  SystemCallArchitectures: 'native',
  CapabilityBoundingSet: '',
  UMask: '0077',
  StateDirectory: 'hv-chat',
  StateDirectoryMode: '0700',
};

describe('NixOS module with Slack (HTTP and Socket Mode), Discord and SMTP notifications', () => {
  let result: ModuleEval;
  beforeAll(async () => {
    result = await evalModule(host(`${slackHttp} ${slackSocket} ${discord} ${smtpMail}`));
  });

  it('renders two services: the engine hv-daemon and the chat process hv-chat', () => {
    expect(result.service).not.toBeNull();
    expect(result.chatService).not.toBeNull();
  });

  it('hv-chat runs the libexec wrapper as the hv-chat system user, bound to the engine', () => {
    const chat = result.chatService!;
    expect(chat.serviceConfig.ExecStart).toBe(
      `${result.package.storePath}/libexec/hv/hv-chat --socket /run/hypervisor/chat.sock`,
    );
    expect(chat.serviceConfig).toMatchObject({ User: 'hv-chat', Group: 'hv-chat' });
    expect(result.users['hv-chat']).toMatchObject({
      isSystemUser: true,
      isNormalUser: false,
      group: 'hv-chat',
    });
    expect(result.groups).toContain('hv-chat');
    // Started with the engine, stopped with it, and only after it (the engine makes the socket).
    expect(chat.bindsTo).toEqual(['hv-daemon.service']);
    expect(chat.after).toContain('hv-daemon.service');
    expect(chat.wantedBy).toContain('hv-daemon.service');
  });

  it('hv-chat is restarted with backoff, and never given up on', () => {
    const sc = result.chatService!.serviceConfig;
    expect(sc.Restart).toBe('always');
    expect(sc.RestartSec).toBeDefined();
    expect(sc.RestartSteps).toBeGreaterThan(0);
    expect(sc.RestartMaxDelaySec).toBeDefined();
    expect(result.chatService!.unitConfig.StartLimitIntervalSec).toBe(0);
  });

  it('hv-chat has every key of the sandbox', () => {
    const sc = result.chatService!.serviceConfig;
    expect(sc).toMatchObject(chatSandbox);
    expect(sc.SystemCallFilter).toEqual(expect.arrayContaining(['@system-service']));
    // It may listen on Slack's HTTP port only.
    expect(sc.SocketBindAllow).toEqual(['tcp:3100']);
    expect(sc.SocketBindDeny).toBe('any');
  });

  it("hv-chat gets exactly its channels' secrets as credentials, never Slack's signing secret nor SMTP's password", () => {
    const credentials = result.chatService!.serviceConfig.LoadCredential as string[];
    expect(credentials).toEqual([
      'slack-http.botTokenFile:/run/secrets/slack-http-bot',
      'slack.appTokenFile:/run/secrets/slack-app',
      'slack.botTokenFile:/run/secrets/slack-bot',
      'discord.tokenFile:/run/secrets/discord',
    ]);
    expect(credentials.join('\n')).not.toMatch(/signing|smtp/);
  });

  it('hv-daemon opens no network listener, makes the socket directory, and gets no chat secret', () => {
    const daemon = result.service!;
    const sc = daemon.serviceConfig;
    expect(sc.SocketBindDeny).toBe('any');
    expect(sc.SocketBindAllow).toBeUndefined();
    expect(sc).toMatchObject({ RuntimeDirectory: 'hypervisor', RuntimeDirectoryMode: '0750' });
    expect(sc.LoadCredential).toBeUndefined();
    expect(JSON.stringify(daemon)).not.toMatch(/slack-bot|slack-app|discord"/);
    // `ss` tells the engine who is at the other end of its socket.
    expect(daemon.path.some((p) => p.endsWith('-iproute2'))).toBe(true);
    // What it had stays: the activation still works (no ProtectSystem and the like).
    expect(sc).toMatchObject({ StateDirectory: 'hypervisor', KillMode: 'mixed', NoNewPrivileges: true });
    expect(sc.ProtectSystem).toBeUndefined();
    expect(daemon.restartIfChanged).toBe(false);
    // Builds run under nix-daemon, where SocketBindDeny does not reach.
    expect(daemon.environment.NIX_REMOTE).toBe('daemon');
  });

  it('the rendered configuration tells hv that systemd runs the chat process, and hv accepts it', () => {
    const json = JSON.parse(result.configJson!) as { chatops: Record<string, unknown> };
    expect(json.chatops).toEqual({
      user: 'hv-chat',
      socket: '/run/hypervisor/chat.sock',
      stateDir: '/var/lib/hv-chat',
      supervise: 'systemd',
    });
    const config = parseConfig(json, channelTypes);
    expect(config.chatops.supervise).toBe('systemd');
  });

  it("agrees with hv's channel registry on which channels and secrets go to the chat process", () => {
    // adapters/registry.ts decides at run time; the module decides at evaluation: they must match.
    const config = parseConfig(JSON.parse(result.configJson!), channelTypes);
    const expected = config.notify.channels.flatMap((channel) => {
      const type = channelTypes.get(channel.type)!;
      const placement = type.placement(channel);
      if (!placement.intake && placement.notifier !== 'chat') return [];
      const files: string[] = [];
      const walk = (prefix: string, value: unknown) => {
        for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
          if (key.endsWith('File')) files.push(`${prefix}${key}`);
          else if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(`${prefix}${key}.`, v);
        }
      };
      walk('', channel);
      return files.filter((key) => !type.engineSecrets.includes(key)).map((key) => `${channel.name}.${key}`);
    });
    const ids = (result.chatService!.serviceConfig.LoadCredential as string[]).map((c) => c.split(':')[0]);
    expect(ids.sort()).toEqual(expected.sort());
    // The Slack port the sandbox lets it listen on is the one hv's schema gives the channel.
    const httpPorts = config.notify.channels.flatMap((c) =>
      c.type === 'slack' && (c as { mode?: string }).mode === 'http'
        ? [`tcp:${(c as { port?: number }).port}`]
        : [],
    );
    expect(result.chatService!.serviceConfig.SocketBindAllow).toEqual(httpPorts);
  });

  it('both units pass systemd-analyze verify (unknown keys and bad values show there)', async () => {
    const version = await systemdVersion();
    expect(version, 'systemd-analyze is installed (.ci/setup installs systemd)').not.toBeNull();
    const diagnostics = await verifyUnits({
      'hv-daemon.service': renderUnit(result.service!),
      'hv-chat.service': renderUnit(result.chatService!),
    });
    // RestartSteps= and RestartMaxDelaySec= came with systemd 254 (NixOS 23.11); older ones ignore them.
    const newer =
      version! < 254 ? /Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\]/ : /^$/;
    expect(diagnostics.filter((line) => !newer.test(line))).toEqual([]);
  });

  it('the verification sees a misspelt key', async () => {
    const broken = structuredClone(result.chatService!);
    broken.serviceConfig.ProtectSytem = 'strict';
    const diagnostics = await verifyUnits({
      'hv-daemon.service': renderUnit(result.service!),
      'hv-chat.service': renderUnit(broken),
    });
    expect(diagnostics.join('\n')).toMatch(/Unknown key '?ProtectSytem'?/);
  });
});

describe('NixOS module: when there is a chat process service', () => {
  it('none without a Slack or Discord channel (SMTP notifications are sent by the engine)', async () => {
    const result = await evalModule(host(smtpMail));
    expect(result.chatService).toBeNull();
    expect(result.service!.serviceConfig.SocketBindDeny).toBe('any');
    expect(JSON.parse(result.configJson!).chatops.supervise).toBe('systemd');
  });

  it('none in manual mode: a hand-started `hv daemon` starts the chat process itself', async () => {
    const result = await evalModule(`{ hypervisor.updateChecker.notify.channels = [ ${discord} ]; }`);
    expect(result.service).toBeNull();
    expect(result.chatService).toBeNull();
    expect(JSON.parse(result.configJson!).chatops).toMatchObject({ supervise: 'daemon', user: 'hv-chat' });
    expect(result.users['hv-chat']?.isSystemUser).toBe(true);
  });

  it('an email channel with command intake runs in the chat process with its mail secrets', async () => {
    const intakeMail = `{ type = "email"; name = "ops-mail"; from = "hv@example.org"; to = [ "ops@example.org" ];
      smtp = { host = "smtp.example.org"; passwordFile = "/run/secrets/smtp"; };
      intake.imap = { host = "imap.example.org"; user = "hv"; passwordFile = "/run/secrets/imap"; }; }`;
    const result = await evalModule(host(intakeMail));
    expect(result.chatService!.serviceConfig.LoadCredential).toEqual([
      'ops-mail.intake.imap.passwordFile:/run/secrets/imap',
      'ops-mail.smtp.passwordFile:/run/secrets/smtp',
    ]);
    // It listens nowhere.
    expect(result.chatService!.serviceConfig.SocketBindAllow).toEqual([]);
    expect(result.chatService!.serviceConfig.SocketBindDeny).toBe('any');
  });

  it('channels set through `settings` count too', async () => {
    const result = await evalModule(
      `{ hypervisor.updateChecker = { enable = true; settings.notify.channels = [ ${discord} ]; }; }`,
    );
    expect(result.chatService!.serviceConfig.LoadCredential).toEqual([
      'discord.tokenFile:/run/secrets/discord',
    ]);
  });

  it('another chatops.user: the service runs as that user, and the module creates no hv-chat user', async () => {
    const result = await evalModule(host(discord, 'chatops.user = "ops-chat";'));
    expect(result.chatService!.serviceConfig).toMatchObject({ User: 'ops-chat', Group: 'ops-chat' });
    expect(JSON.parse(result.configJson!).chatops.user).toBe('ops-chat');
    expect(result.users['hv-chat']).toBeUndefined();
    expect(result.groups).not.toContain('hv-chat');
  });
});

describe('NixOS module: refused chat process configurations', () => {
  it('a secret file that is not an absolute path string, naming channel and key but not the value', async () => {
    await expect(
      evalModule(host(slackSocket.replace('"/run/secrets/slack-app"', '"slack-app-token"'))),
    ).rejects.toThrow(
      /the appTokenFile of the notify channel "slack" must be the absolute path of a file holding the secret, as a string such as "\/run\/secrets\/slack"[^\n]*; it is a string that does not start with "\/"/,
    );
    await expect(
      evalModule(host(slackSocket.replace('"/run/secrets/slack-app"', '"slack-app-token"'))),
    ).rejects.not.toThrow(/slack-app-token/);
    // A Nix path would be copied into the world-readable store: refused, for SMTP too.
    await expect(
      evalModule(host(smtpMail.replace('"/run/secrets/smtp"', './smtp-password'))),
    ).rejects.toThrow(/the smtp\.passwordFile of the notify channel "ops-mail" .* it is a Nix path/);
    await expect(evalModule(host(discord.replace('"/run/secrets/discord"', '42')))).rejects.toThrow(
      /the tokenFile of the notify channel "discord" .* it is a int/,
    );
  });

  it('the chat process as root', async () => {
    await expect(evalModule(host(discord, 'chatops.user = "root";'))).rejects.toThrow(
      /chatops\.user is "root": the chat process .* must not run as root/,
    );
  });

  it('the engine starting the chat process itself under the module', async () => {
    await expect(evalModule(host(discord, 'settings.chatops.supervise = "daemon";'))).rejects.toThrow(
      /chatops\.supervise is "daemon", but with enable = true the module runs the chat process as its own service/,
    );
  });

  it('a chat state directory outside /var/lib', async () => {
    await expect(evalModule(host(discord, 'chatops.stateDir = "/srv/hv-chat";'))).rejects.toThrow(
      /chatops\.stateDir is "\/srv\/hv-chat": the chat service may write only below \/var\/lib/,
    );
    const ok = await evalModule(host(discord, 'chatops.stateDir = "/var/lib/hv/chat";'));
    expect(ok.chatService!.serviceConfig).toMatchObject({
      StateDirectory: 'hv/chat',
      WorkingDirectory: '/var/lib/hv/chat',
    });
  });
});
