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
# `hv daemon` as the systemd service hv-daemon, which runs the scheduled checks and chat-ops.
# `install = false` turns everything off.
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
    apply.operation = cfg.applyOperation;
    inherit (cfg) schedule randomizedDelaySec;
    notify.channels = cfg.notify.channels;
  } // lib.optionalAttrs (cfg.chatops != { }) { inherit (cfg) chatops; };

  finalConfig = lib.recursiveUpdate generated cfg.settings;

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
        for example from agenix or sops-nix. Everything in this option lands in the world-readable
        Nix store; evaluation fails if a key looks like an inline secret.
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
      description = "Who may run which commands from chat and email (hv's `chatops` configuration).";
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
        path = [ config.nix.package pkgs.git pkgs.util-linux pkgs.systemd ]
          ++ lib.optional (cfg.healthChecks.vms.command != null) pkgs.libvirt
          ++ [ "/run/current-system/sw" ];

        environment = {
          HV_CONFIG = configPath;
          HV_COMMAND_NAME = cfg.commandName;
          NODE_ENV = "production";
          NO_COLOR = "1";
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
  ];
}
