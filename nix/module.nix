# NixOS module for hv: scheduled NixOS update checks, notices at login, tested upgrades and
# chat-ops for a hypervisor host whose system is a flake (by default in /etc/hypervisor).
#
#   imports = [ ./path/to/hv/nix/module.nix ];
#   hypervisor.updateChecker = {
#     enable = true;                 # false: manual checks only (commands and config, no daemon)
#     schedule = "Mon *-*-* 02:00:00";
#   };
#
# Importing the module installs the commands (`hvu` by default, see `commandName`, and the
# aliases hv-check-updates, hv-upgrade-test, hv-system-upgrade), renders /etc/hv/config.json (the
# file the CLI reads by default, so the CLI and the daemon agree) and makes login (console and,
# when enabled, SSH) show the notices hv writes to /etc/motd.d. `enable = true` adds the daemon:
# `hv daemon` as the systemd service hv-daemon, which runs the scheduled checks and chat-ops;
# with a Slack or Discord channel (or an email channel with `intake`) configured, it adds the
# chat process hv-chat as its own service, which runs unprivileged as the user hv-chat (see
# "Privilege separation" below). `install = false` turns everything off.
# Needs NixOS 23.11 or later (PAM rules).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;

  cfg = config.hypervisor.updateChecker;
  json = pkgs.formats.json { };

  # Fixed locations: systemd creates the first two (StateDirectory=, LogsDirectory= below), and
  # the PAM rule below shows what hv writes into the third.
  stateDir = "/var/lib/hypervisor";
  logDir = "/var/log/hypervisor";
  motdDir = "/etc/motd.d";
  gcRootsDir = "/nix/var/nix/gcroots/hypervisor";
  configPath = "/etc/hv/config.json";

  healthCommand = types.submodule {
    options = {
      name = mkOption {
        type = types.strMatching "[A-Za-z0-9._-]+";
        description = "Name of the check, as shown in test results.";
        example = "menu";
      };
      argv = mkOption {
        type = types.nonEmptyListOf types.str;
        description = "Command to run, as an argv list (no shell). It passes when it exits 0.";
        example = [ "systemctl" "is-active" "hypervisor-menu" ];
      };
      timeoutSec = mkOption {
        type = types.ints.between 1 3600;
        default = 30;
        description = "Seconds the command may take before it counts as failed.";
      };
    };
  };

  # A reachability probe of the dead-man window (apply.probes): a command or a TCP connect.
  confirmProbe = types.submodule {
    options = {
      argv = mkOption {
        type = types.nullOr (types.nonEmptyListOf types.str);
        default = null;
        description = "Command to run, as an argv list (no shell). It passes when it exits 0.";
        example = [ "ping" "-c1" "-W2" "10.0.0.1" ];
      };
      tcp = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "`host:port` to connect to (an IPv6 address in brackets). Set exactly one of `argv` and `tcp`.";
        example = "10.0.0.1:22";
      };
      timeoutSec = mkOption {
        type = types.ints.between 1 60;
        default = 5;
        description = "Seconds the probe may take before it counts as failed.";
      };
    };
  };

  healthChecksOptions = {
    options = {
      services = mkOption {
        type = types.listOf types.str;
        default = [ "libvirtd" ];
        description = "systemd units that must be active after a test activation.";
      };
      vms.command = mkOption {
        type = types.nullOr (types.nonEmptyListOf types.str);
        default = if config.virtualisation.libvirtd.enable then [ "virsh" "list" "--name" "--state-running" ] else null;
        defaultText = literalExpression ''
          if config.virtualisation.libvirtd.enable
          then [ "virsh" "list" "--name" "--state-running" ]
          else null'';
        description = ''
          Command printing the names of running VMs, one per line. Every VM that ran before a test
          activation must still run after it. `null` disables the VM check.
        '';
      };
      commands = mkOption {
        type = types.listOf healthCommand;
        default = [ ];
        description = "Further checks: commands that must exit 0 after a test activation.";
      };
    };
  };

  healthChecks = {
    inherit (cfg.healthChecks) services;
    commands = map (c: { inherit (c) name argv timeoutSec; }) cfg.healthChecks.commands;
  } // lib.optionalAttrs (cfg.healthChecks.vms.command != null) {
    vms.command = cfg.healthChecks.vms.command;
  };

  # SPEC "Configuration". Keys left unset here take hv's own defaults; `settings` can set any key.
  generated = lib.optionalAttrs (cfg.host != null) { inherit (cfg) host; } // {
    flake = { dir = cfg.flakeDir; input = cfg.input; };
    paths = { state = stateDir; log = logDir; motd = "${motdDir}/updates-available"; gcRoots = gcRootsDir; };
    test = { inherit (cfg) maxAgeDays; inherit healthChecks; };
    apply = { operation = cfg.applyOperation; } // lib.optionalAttrs (cfg.confirm.require != [ ]) {
      confirm = cfg.confirm.require;
      confirmWithinSec = cfg.confirm.withinSec;
      probes = map (p: lib.filterAttrs (_: v: v != null) { inherit (p) argv tcp timeoutSec; }) cfg.confirm.probes;
    };
    inherit (cfg) schedule randomizedDelaySec;
    notify.channels = cfg.notify.channels;
    # Where the chat process runs (SPEC "Chat and email commands"); the admin's `chatops` keys
    # come on top.
    chatops = chatProcessDefaults // cfg.chatops;
  };

  finalConfig = lib.recursiveUpdate generated cfg.settings;

  # Privilege separation (SPEC "Chat and email commands"). The root engine (hv-daemon) opens no network
  # listener and holds no chat token: every network-facing adapter runs in the chat process
  # (`libexec/hv/hv-chat`), its own service hv-chat under the unprivileged user `chatops.user`,
  # which connects to the engine's Unix socket `chatops.socket` and asks the engine for all it
  # does. Under systemd the engine does not start the chat process itself (`supervise`), and the
  # chat process reads its secrets from $CREDENTIALS_DIRECTORY (LoadCredential) rather than from
  # the files, which it cannot read.
  chatProcessDefaults = {
    user = "hv-chat";
    socket = "/run/hypervisor/chat.sock";
    stateDir = "/var/lib/hv-chat";
    # Without the daemon (manual mode) there is no hv-chat service: an `hv daemon` started by
    # hand starts the chat process itself.
    supervise = if cfg.enable then "systemd" else "daemon";
  };
  chat = finalConfig.chatops;
  chatStateName = lib.removePrefix "/var/lib/" chat.stateDir;

  # Channels whose parts run in the chat process: Slack and Discord always (their intake and
  # their notifier need the platform connection and token), email only with command intake
  # (`intake`); plain email notifications are sent by the engine. Mirrors `placement` in
  # adapters/registry.ts (test/nix/module-chat.test.ts compares the two).
  channelList = builtins.filter builtins.isAttrs (finalConfig.notify.channels or [ ]);
  isChatChannel = c: builtins.elem (c.type or null) [ "slack" "discord" ] || ((c.type or null) == "email" && c ? intake);
  chatChannels = builtins.filter isChatChannel channelList;
  channelName = c: toString (c.name or c.type);

  # Secret-file keys the chat process never receives, by channel type: only the engine verifies
  # Slack's request signatures, so a compromised chat process cannot forge one. Mirrors
  # `engineSecrets` in adapters/registry.ts.
  engineOnlySecrets = { slack = [ "signingSecretFile" ]; };

  # Every `…File` key of a channel entry, at any depth (smtp.passwordFile, intake.imap.passwordFile):
  # { channel, key (the dotted path inside the entry), value }.
  secretFiles = c:
    let
      walk = prefix: attrs: lib.concatLists (lib.mapAttrsToList
        (n: v:
          if lib.hasSuffix "File" n then [ { channel = channelName c; key = lib.concatStringsSep "." (prefix ++ [ n ]); value = v; } ]
          else if builtins.isAttrs v then walk (prefix ++ [ n ]) v
          else [ ])
        attrs);
    in
    walk [ ] c;
  # What the chat process gets: `<channel name>.<key>` as credential id, which is where it looks
  # in $CREDENTIALS_DIRECTORY (slack.botTokenFile, ops-mail.intake.imap.passwordFile, ...).
  chatCredentials = lib.concatMap
    (c: builtins.filter (s: !(builtins.elem s.key (engineOnlySecrets.${c.type} or [ ]))) (secretFiles c))
    chatChannels;
  isAbsolutePath = v: builtins.isString v && lib.hasPrefix "/" v;
  # Never shows the value: a misplaced secret would land in the build log.
  describeBad = v:
    if builtins.isPath v then "a Nix path, which would copy the secret into the world-readable Nix store"
    else if builtins.isString v then "a string that does not start with \"/\""
    else "a ${builtins.typeOf v}";
  # Checked for every channel: a Nix path (./secret) in any of them would be copied to the store.
  badSecrets = builtins.filter (s: !(isAbsolutePath s.value)) (lib.concatMap secretFiles channelList);
  badChannelNames = builtins.filter (n: builtins.match "[A-Za-z0-9._-]+" n == null) (map channelName chatChannels);

  # TCP ports the chat process listens on: Slack's HTTP mode (the `port` key, 3000 by default).
  # Any other bind is refused by the kernel (SocketBindDeny below).
  chatListenPorts = lib.unique (map (c: c.port or 3000)
    (builtins.filter (c: c.type == "slack" && (c.mode or "socket") == "http") chatChannels));

  runChatService = cfg.install && cfg.enable && chatChannels != [ ];

  # Keys that look like an inline secret (`password`, `botToken`, `signingSecret`, ...). hv reads
  # secrets from files (`passwordFile`, `botTokenFile`, ...); a secret put in this config would
  # end up world-readable in the Nix store.
  inlineSecrets =
    let
      secretKey = name: builtins.match ".*([Pp]assword|[Tt]oken|[Ss]ecret)" name != null;
      walk = path: v:
        if builtins.isAttrs v then
          lib.concatLists (lib.mapAttrsToList
            (n: x: lib.optional (secretKey n && builtins.isString x) "${path}.${n}" ++ walk "${path}.${n}" x)
            v)
        else if builtins.isList v then lib.concatLists (lib.imap0 (i: x: walk "${path}[${toString i}]" x) v)
        else [ ];
    in
    walk "hypervisor.updateChecker" { inherit (cfg) settings chatops; notify.channels = cfg.notify.channels; };

  aliases = [ "hv-check-updates" "hv-upgrade-test" "hv-system-upgrade" ];

  # What goes on the PATH: the main command under `commandName` and the three aliases, all
  # running cfg.package. The main command is a small script rather than a symlink so that it can
  # tell hv the name it was installed under (HV_COMMAND_NAME), for messages that name a command.
  # The package's own bin/hv stays out of the PATH, so nothing named `hv` is installed unless
  # commandName is "hv".
  commands = pkgs.runCommand "hv-commands-${cfg.commandName}"
    {
      meta.mainProgram = cfg.commandName;
      passthru.hvCommands = true; # lets the clash assertion below tell this package from others
    }
    ''
      mkdir -p $out/bin
      cat > $out/bin/${cfg.commandName} <<'EOF'
      #!${pkgs.runtimeShell}
      HV_COMMAND_NAME=${cfg.commandName} exec ${cfg.package}/bin/hv "$@"
      EOF
      chmod 0755 $out/bin/${cfg.commandName}
      ${lib.concatMapStrings (a: "ln -s ${cfg.package}/bin/${a} $out/bin/${a}\n") aliases}
    '';

  # Other packages of environment.systemPackages that evidently provide the command name: their
  # name or meta.mainProgram is it (Hyper-NixOS builds its dispatcher with writeScriptBin "hv",
  # whose name is "hv"). NixOS merges all packages into one bin/ and lets the first one win
  # without an error, so such a clash would silently hide one of the two commands.
  clashing = builtins.filter
    (p: !(p.hvCommands or false) && ((p.name or null) == cfg.commandName || (p.meta.mainProgram or null) == cfg.commandName))
    config.environment.systemPackages;
in
{
  options.hypervisor.updateChecker = {
    install = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to install hv at all: the commands (see `commandName`), /etc/hv/config.json and
        the login notices. `false` makes this module do nothing, as if it was not imported (and
        `enable` must then be false as well).
      '';
    };

    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether to run the hv daemon (the systemd service hv-daemon): scheduled update checks
        (`schedule`), notifications and chat-ops.

        `false` is manual mode: the commands and /etc/hv/config.json are still installed (as long
        as `install` is true), so `hvu check-updates`, `hv-upgrade-test` and
        `hv-system-upgrade` work by hand, but nothing runs on its own: no service, no timer, no
        schedule.
      '';
    };

    commandName = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9._+-]*";
      default = "hvu";
      example = "hv";
      description = ''
        Name of hv's main command on the PATH (`hvu status`, `hvu upgrade-test`, ...). The
        aliases hv-check-updates, hv-upgrade-test and hv-system-upgrade keep their names, and
        chat keeps `/hv`.

        The default is not `hv` because Hyper-NixOS ships its own `hv` (a dispatcher: `hv vm
        list`, `hv status`, ...), as a package or as a link in /usr/local/bin, and two commands of
        one name silently hide each other. Set this to `"hv"` on a host that has no other `hv`.
        Evaluation fails when another package of environment.systemPackages is recognisably
        named or meant to be run as this name (its name or meta.mainProgram); a command installed
        outside Nix (such as /usr/local/bin/hv) cannot be seen, hence the default.
      '';
    };

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The hv package (provides hv, hv-check-updates, hv-upgrade-test, hv-system-upgrade).";
    };

    schedule = mkOption {
      type = types.str;
      default = "monthly";
      example = "Mon *-*-* 02:00:00";
      description = ''
        When to check for updates (local time): `monthly` (the 1st at 00:00), `weekly` (Monday
        00:00), `daily`, `hourly`, a 5- or 6-field cron expression such as `0 2 * * 1`, or a systemd
        calendar expression such as `Mon *-*-* 02:00:00`, `*-*-01 03:00:00` or `Sat,Sun *-*-* 04:30`.
        `hv schedule next` shows what an expression means. A check missed while the host was off
        runs when hv-daemon starts (like `Persistent=true`).
      '';
    };

    randomizedDelaySec = mkOption {
      type = types.ints.between 0 604800;
      default = 3600;
      description = "Delay each scheduled check by a random time up to this many seconds, to spread hosts.";
    };

    flakeDir = mkOption {
      type = types.strMatching "/.*";
      default = "/etc/hypervisor";
      description = "Directory of the flake this host is built from.";
    };

    host = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "hypervisor-x86_64";
      description = ''
        Name of this host's configuration: `nixosConfigurations.<host>` in the flake. `null`
        leaves it out of the configuration, and hv finds it: `nixosConfigurations.<hostname>`
        if the flake has it, else the flake's only configuration.
      '';
    };

    input = mkOption {
      type = types.str;
      default = "nixpkgs";
      description = "The flake input whose updates are tracked and tested.";
    };

    maxAgeDays = mkOption {
      type = types.ints.between 1 365;
      default = 7;
      description = "A passed upgrade test older than this many days no longer allows `hv system-upgrade`.";
    };

    applyOperation = mkOption {
      type = types.enum [ "switch" "boot" ];
      default = "switch";
      description = "How `hv system-upgrade` applies the tested system: at once (`switch`) or at the next boot (`boot`).";
    };

    confirm = {
      require = mkOption {
        type = types.listOf (types.enum [ "chat" "probes" "human" ]);
        default = [ ];
        description = ''
          Dead-man revert (`apply.confirm`): after `upgrade-test` activates a system, and after
          `system-upgrade` or `rollback` switches, evidence from outside the host must arrive within
          `withinSec`, else the previous system (and profile generation and flake.lock) comes back by
          itself. Any one kind confirms: `chat` (every Slack/Discord channel reconnected), `probes`
          (all of `probes` pass), `human` ("Keep" in the chat thread, or `hv confirm`). Empty: off.
        '';
        example = [ "chat" "human" ];
      };
      withinSec = mkOption {
        type = types.ints.between 2 3600;
        default = 120;
        description = "Seconds the confirmation may take after the activation (`apply.confirmWithinSec`).";
      };
      probes = mkOption {
        type = types.listOf confirmProbe;
        default = [ ];
        description = "Reachability probes for `require = [ \"probes\" ]` (`apply.probes`).";
      };
    };

    healthChecks = mkOption {
      type = types.submodule healthChecksOptions;
      default = { };
      description = "What must hold after a test activation; on any failure the previous system is re-activated.";
    };

    notify.channels = mkOption {
      type = types.listOf (types.attrsOf json.type);
      default = [ { type = "motd"; } { type = "wall"; } ];
      example = literalExpression ''
        [
          { type = "motd"; }
          { type = "wall"; command = [ "wall" "-g" "wheel" ]; }
          {
            type = "email"; name = "ops-mail";
            from = "hv@hv01.example.org"; to = [ "ops@example.org" ];
            smtp = { host = "smtp.example.org"; port = 587; user = "hv"; passwordFile = "/run/secrets/smtp"; };
            events = [ "update.available" "test.failed" ];
          }
          {
            type = "slack"; name = "slack"; mode = "socket"; channel = "C0123OPS";
            botTokenFile = "/run/secrets/slack-bot"; appTokenFile = "/run/secrets/slack-app";
          }
        ]
      '';
      description = ''
        Notification channels, as in hv's configuration (`notify.channels`). Setting this replaces
        the default, so list `{ type = "motd"; }` to keep the login notice.

        Secrets are never written here: give the path of a file that holds them (`passwordFile`,
        `botTokenFile`, `appTokenFile`, `signingSecretFile`, `tokenFile`), readable by root only,
        for example from agenix or sops-nix, as a string (a Nix path such as ./token would be
        copied into the store). Everything in this option lands in the world-readable Nix store;
        evaluation fails if a key looks like an inline secret.

        Slack and Discord channels, and email channels with `intake`, run in the chat process
        (the service hv-chat, user hv-chat), which gets their secret files through systemd's
        LoadCredential, as `<channel name>.<key>` (slack.botTokenFile, ops-mail.smtp.passwordFile);
        it cannot read the files themselves. Slack's `signingSecretFile` and the password of
        email channels without intake stay with hv-daemon.
      '';
    };

    chatops = mkOption {
      type = types.attrsOf json.type;
      default = { };
      example = literalExpression ''
        {
          roles = { "slack:T0123:U0456" = "admin"; "discord:role:2222" = "viewer"; };
          approvals = { system-upgrade = 1; rollback = 1; };
        }
      '';
      description = ''
        Who may run which commands from chat and email (hv's `chatops` configuration).

        The chat process (Slack, Discord, email intake) runs as the service hv-chat under the user
        `user` (default "hv-chat", a system user this module creates; another name is yours to
        create, never "root"), connects to the engine's socket `socket` (default
        /run/hypervisor/chat.sock) and writes only to `stateDir` (default /var/lib/hv-chat, which
        must lie below /var/lib). The module sets `supervise = "systemd"`: hv-daemon does not start
        the chat process itself.
      '';
    };

    settings = mkOption {
      type = json.type;
      default = { };
      example = literalExpression ''{ notify.reminderDays = 7; backup.keep = 20; }'';
      description = ''
        Any further hv configuration, merged last and recursively into the generated
        /etc/hv/config.json (attribute sets merge; other values, lists included, replace).
      '';
    };

    motd.pamServices = mkOption {
      type = types.listOf types.str;
      default = [ "login" ] ++ lib.optional config.services.openssh.enable "sshd";
      defaultText = literalExpression ''[ "login" ] ++ lib.optional config.services.openssh.enable "sshd"'';
      description = ''
        PAM services that show the notices in ${motdDir} at login (pam_motd). NixOS's own motd
        support shows only `users.motd`, never a directory.
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = [ {
        assertion = cfg.install || !cfg.enable;
        message = "hypervisor.updateChecker.enable = true needs hypervisor.updateChecker.install = true (the daemon runs the installed hv); set install = true, or enable = false to install nothing.";
      } ];
    }
    (mkIf cfg.install {
      assertions = [
        {
          assertion = cfg.host == null || builtins.match "[A-Za-z0-9_.-]+" cfg.host != null;
          message = "hypervisor.updateChecker.host must name nixosConfigurations.<host> in ${cfg.flakeDir} (letters, digits, \"_\", \"-\", \".\"); it is \"${toString cfg.host}\". Set it to the name, or to null to let hv find it.";
        }
        {
          assertion = !(builtins.elem cfg.commandName aliases);
          message = "hypervisor.updateChecker.commandName is \"${cfg.commandName}\", the name of one of hv's aliases (${lib.concatStringsSep ", " aliases}); choose another name, such as \"hvu\".";
        }
        {
          assertion = clashing == [ ];
          message = "hypervisor.updateChecker.commandName is \"${cfg.commandName}\", but environment.systemPackages also has ${lib.concatMapStringsSep ", " (p: "\"${p.name or "?"}\"") clashing}, which provides a command of that name (Hyper-NixOS's own `hv` dispatcher, for one); one would silently hide the other. Set hypervisor.updateChecker.commandName to a free name, such as \"hvu\" (the default).";
        }
        {
          assertion = badSecrets == [ ];
          message = lib.concatMapStringsSep "\n" (s: "hypervisor.updateChecker: the ${s.key} of the notify channel \"${s.channel}\" must be the absolute path of a file holding the secret, as a string such as \"/run/secrets/${s.channel}\" (from agenix or sops-nix); it is ${describeBad s.value}.") badSecrets;
        }
        {
          assertion = chat.user != "root";
          message = "hypervisor.updateChecker.chatops.user is \"root\": the chat process (Slack, Discord, email intake) parses what arrives from the network and must not run as root. Leave it unset (the module creates the system user \"hv-chat\") or name another unprivileged user.";
        }
        {
          assertion = !cfg.enable || chat.supervise == "systemd";
          message = "hypervisor.updateChecker: chatops.supervise is \"${toString chat.supervise}\", but with enable = true the module runs the chat process as its own service (hv-chat) and the engine's service may not listen on the network; remove chatops.supervise from the configuration.";
        }
        {
          assertion = !runChatService || builtins.match "/var/lib/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*" chat.stateDir != null;
          message = "hypervisor.updateChecker.chatops.stateDir is \"${toString chat.stateDir}\": the chat service may write only below /var/lib (StateDirectory=, ProtectSystem=strict); use a directory there, such as \"/var/lib/hv-chat\" (the default).";
        }
        {
          assertion = badChannelNames == [ ];
          message = "hypervisor.updateChecker: notify channel names ${lib.concatMapStringsSep ", " (n: "\"${n}\"") badChannelNames} may contain only letters, digits, \".\", \"_\" and \"-\" (they name the chat process's credentials); rename them.";
        }
        {
          assertion = inlineSecrets == [ ];
          message = "hypervisor.updateChecker: ${lib.concatStringsSep ", " inlineSecrets} look like inline secrets; give the path of a file holding the secret instead (passwordFile, botTokenFile, tokenFile, ...).";
        }
      ];

      environment.etc."hv/config.json".text = builtins.toJSON finalConfig;

      environment.systemPackages = [ commands ];

      # The daemon's unit creates the state and log directories (StateDirectory=, LogsDirectory=);
      # in manual mode nothing does, so create them here too (the same owner and mode).
      systemd.tmpfiles.rules = [
        "d ${motdDir} 0755 root root -"
        "d ${gcRootsDir} 0755 root root -"
      ] ++ lib.optionals (!cfg.enable) [
        "d ${stateDir} 0700 root root -"
        "d ${logDir} 0700 root root -"
      ];

      # pam_motd with only motd_dir= shows the directory and nothing else, so it does not repeat
      # NixOS's own motd rule; ordered right after it.
      security.pam.services = lib.genAttrs cfg.motd.pamServices (service: {
        rules.session.hv-motd-dir = {
          order = config.security.pam.services.${service}.rules.session.motd.order + 1;
          control = "optional";
          modulePath = "${pkgs.pam}/lib/security/pam_motd.so";
          args = [ "motd_dir=${motdDir}" ];
        };
      });

      # The chat process's user (also when `hv daemon` is started by hand and spawns the chat
      # process itself). Another `chatops.user` is the admin's to create.
      users.users = mkIf (chat.user == chatProcessDefaults.user) {
        ${chat.user} = {
          isSystemUser = true;
          group = chat.user;
          description = "hv chat process (Slack, Discord, email intake)";
        };
      };
      users.groups = mkIf (chat.user == chatProcessDefaults.user) { ${chat.user} = { }; };
    })
    (mkIf (cfg.install && cfg.enable) {
      systemd.services.hv-daemon = {
        description = "hv: NixOS update checks, notifications and chat-ops";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];

        # Activating a new system must not kill the daemon: it may be running the very upgrade that
        # performs the activation. A new hv version takes over at the next reboot or restart; a new
        # configuration is picked up at once by a reload (SIGHUP), which keeps running work alive.
        restartIfChanged = false;
        reloadTriggers = [ config.environment.etc."hv/config.json".source ];

        # Tools hv runs. /run/current-system/sw comes last, for what belongs to the running system
        # (nixos-version, and whatever health-check commands name).
        # iproute2: `ss` tells the engine the uid of the process at the other end of its socket
        # (sock_diag), which must be the chat user's.
        path = [ config.nix.package pkgs.git pkgs.util-linux pkgs.systemd pkgs.iproute2 ]
          ++ lib.optional (cfg.healthChecks.vms.command != null) pkgs.libvirt
          ++ [ "/run/current-system/sw" ];

        environment = {
          HV_CONFIG = configPath;
          HV_COMMAND_NAME = cfg.commandName;
          NODE_ENV = "production";
          NO_COLOR = "1";
        } // lib.optionalAttrs config.nix.enable {
          # Builds go through nix-daemon, in its own cgroup: as root, nix would otherwise build in
          # this service's cgroup, where SocketBindDeny below would fail any build (a test suite)
          # that listens on a port.
          NIX_REMOTE = "daemon";
        };

        serviceConfig = {
          Type = "simple";
          ExecStart = "${cfg.package}/bin/hv daemon --config ${configPath}";
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
          # Retry after a crash or a broken configuration; a fixed configuration is then picked up.
          Restart = "on-failure";
          RestartSec = "30s";
          # SIGTERM goes to hv only, which finishes or hands over its current step (a nix build, an
          # activation) instead of having it killed under it; whatever is left gets SIGKILL.
          KillMode = "mixed";
          TimeoutStopSec = "30s";

          StateDirectory = "hypervisor";
          StateDirectoryMode = "0700";
          LogsDirectory = "hypervisor";
          LogsDirectoryMode = "0700";
          # The engine's socket for the chat process, /run/hypervisor/chat.sock: the engine gives
          # the directory to the chat user's group (root:hv-chat 0750) and checks the uid of every
          # peer.
          RuntimeDirectory = "hypervisor";
          RuntimeDirectoryMode = "0750";
          # No network listener in the engine (nor in what it starts, nix builds aside, see
          # NIX_REMOTE): a bind() to any IPv4/IPv6 address and port fails. Connecting out (git,
          # nix substituters, SMTP) and the Unix socket are unaffected. The chat process, which
          # does listen (Slack's HTTP mode), is hv-chat.service.
          SocketBindDeny = "any";
          # hv sets 077 itself anyway; it writes the login notice in /etc/motd.d with mode 0644 and
          # runs nix and switch-to-configuration with umask 022.
          UMask = "0077";

          # Hardening, limited by the job: hv builds with nix and runs switch-to-configuration, whose
          # activation scripts write all over /etc, /boot, /nix/var, /var and /run, mount file
          # systems, set the hostname, create users and home directories, and install setuid
          # wrappers. Hence, deliberately:
          # - no ProtectSystem / ProtectHome / ReadOnlyPaths: they make /usr, /boot, /etc or /home
          #   read-only for the activation;
          # - no PrivateTmp / PrivateDevices / ProtectKernel* / ProtectControlGroups / ProtectHostname:
          #   each puts the service in its own mount or UTS namespace, so mounts made and the
          #   hostname set by the activation would stay invisible to the rest of the system;
          # - no CapabilityBoundingSet / RestrictSUIDSGID / RestrictNamespaces / SystemCallFilter:
          #   the activation needs nearly every capability and creates setuid wrappers, and nix's
          #   build sandbox needs namespaces;
          # - no LockPersonality (nix sets the personality for i686 builds) and no
          #   MemoryDenyWriteExecute (Node's JIT).
          # What is safe to keep:
          NoNewPrivileges = true; # runs as root already; nothing it starts may gain more via setuid
          RestrictRealtime = true;
          # Builds are background work on a host whose job is running VMs.
          Nice = 10;
          IOSchedulingClass = "best-effort";
          IOSchedulingPriority = 7;
        };
      };
    })
    (mkIf runChatService {
      systemd.services.hv-chat = {
        description = "hv chat process: Slack, Discord and email intake, unprivileged";
        # It runs only alongside the engine, whose socket it needs: started with it (wantedBy),
        # stopped and restarted with it (bindsTo, partOf), after it (the engine makes the socket;
        # until it exists the chat process exits and is restarted).
        wantedBy = [ "multi-user.target" "hv-daemon.service" ];
        bindsTo = [ "hv-daemon.service" ];
        partOf = [ "hv-daemon.service" ];
        after = [ "hv-daemon.service" "network-online.target" ];
        wants = [ "network-online.target" ];

        # Like hv-daemon: engine and chat process come from one hv package and speak its protocol,
        # so a new version takes over for both at once, at the next reboot or `systemctl restart
        # hv-daemon` (which restarts hv-chat too). Safe at any time: running operations belong to
        # the engine, and a notification the chat process had in flight is sent again.
        restartIfChanged = false;

        environment = {
          HV_COMMAND_NAME = cfg.commandName;
          NODE_ENV = "production";
          NO_COLOR = "1";
        };

        # Never give up restarting (the default limit stops after 5 starts in 10 s).
        unitConfig.StartLimitIntervalSec = 0;

        serviceConfig = {
          Type = "simple";
          ExecStart = "${cfg.package}/libexec/hv/hv-chat --socket ${chat.socket}";
          User = chat.user;
          Group = chat.user;
          # A crash of the chat process never stops the engine or a running operation; it comes
          # back after 1 s, then after up to 60 s when it keeps failing (systemd 254+).
          Restart = "always";
          RestartSec = "1s";
          RestartSteps = 5;
          RestartMaxDelaySec = "60s";
          TimeoutStopSec = "10s";

          # Its own writable directory (mail spool, delivery journal), and nothing else.
          StateDirectory = chatStateName;
          StateDirectoryMode = "0700";
          WorkingDirectory = chat.stateDir;
          UMask = "0077";

          # Secrets: systemd (as root) copies each file into $CREDENTIALS_DIRECTORY, readable by
          # this service only; the chat user cannot read the files themselves. The engine's
          # secrets (Slack's signing secret, the SMTP password of notifications) are not here.
          LoadCredential = map (s: "${s.channel}.${s.key}:${s.value}") chatCredentials;

          # Sandbox: it parses what arrives from the network, so it gets as little as it can run with.
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          NoNewPrivileges = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectClock = true;
          ProtectHostname = true;
          ProtectProc = "invisible";
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          RemoveIPC = true;
          LockPersonality = true;
          # Node's JIT (V8) writes machine code and then runs it, which needs memory that is
          # writable and executable; MemoryDenyWriteExecute = true would crash it.
          MemoryDenyWriteExecute = false;
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
          # The engine's Unix socket, and the platforms over IPv4/IPv6; no netlink, no raw sockets.
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
          # It may listen only on Slack's HTTP port(s), if any; outgoing connections are unaffected.
          SocketBindAllow = map (port: "tcp:${toString port}") chatListenPorts;
          SocketBindDeny = "any";
          SystemCallFilter = [ "@system-service" "~@privileged" ];
          SystemCallErrorNumber = "EPERM";
          SystemCallArchitectures = "native";
          # A flood of requests costs this service, never the engine or the VMs.
          MemoryMax = "256M";
          TasksMax = 128;
        };
      };
    })
  ];
}
