# Declarations of the NixOS options that nix/module.nix and the VM test's node read or define,
# with the types and defaults NixOS gives them (nixos/modules/...). Anything the module defines
# outside this list fails evaluation with "The option `…' does not exist", as on NixOS.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;

  # nixos/lib/systemd-unit-options.nix: atoms, or lists that concatenate across definitions.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    check = x: builtins.isString x || builtins.isInt x || builtins.isBool x || builtins.isPath x
      || lib.isDerivation x || builtins.isList x;
    merge = loc: defs:
      if builtins.any (d: builtins.isList d.value) defs
      then builtins.concatMap (d: lib.toList d.value) defs
      else lib.mergeEqualOption loc defs;
  };
  strList = mkOption { type = types.listOf types.str; default = [ ]; };
  lines = mkOption { type = types.lines; default = ""; };

  serviceOptions = {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.str; default = ""; };
      documentation = strList;
      requires = strList;
      wants = strList;
      after = strList;
      before = strList;
      bindsTo = strList;
      partOf = strList;
      conflicts = strList;
      wantedBy = strList;
      requiredBy = strList;
      environment = mkOption {
        type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
        default = { };
      };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      script = lines;
      preStart = lines;
      postStart = lines;
      preStop = lines;
      postStop = lines;
      reload = lines;
      restartTriggers = mkOption { type = types.listOf unitOption; default = [ ]; };
      reloadTriggers = mkOption { type = types.listOf unitOption; default = [ ]; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      reloadIfChanged = mkOption { type = types.bool; default = false; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      startAt = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; };
    };
  };

  etcOptions = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      target = mkOption { type = types.str; default = name; };
      text = mkOption { type = types.nullOr types.lines; default = null; };
      source = mkOption { type = types.path; };
      mode = mkOption { type = types.str; default = "symlink"; };
      user = mkOption { type = types.str; default = "+0"; };
      group = mkOption { type = types.str; default = "+0"; };
    };
    # nixos/modules/system/etc/etc.nix: `text` becomes a store file that `source` points to.
    config.source = lib.mkIf (config.text != null) (lib.mkDefault (pkgs.writeText "etc-${baseNameOf name}" config.text));
  };

  pamRule = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      enable = mkOption { type = types.bool; default = true; };
      order = mkOption { type = types.int; };
      control = mkOption { type = types.str; };
      modulePath = mkOption { type = types.str; };
      args = mkOption { type = types.listOf types.str; default = [ ]; };
      settings = mkOption { type = types.attrsOf types.anything; default = { }; };
    };
  };

  # nixos/modules/security/pam.nix (23.11+): every service carries the built-in rules, ordered
  # 10000 + 100 * position; `motd` is one of the last session rules and off unless users.motd is set.
  pamService = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      showMotd = mkOption { type = types.bool; default = false; };
      startSession = mkOption { type = types.bool; default = false; };
      rules = lib.genAttrs [ "account" "auth" "password" "session" ]
        (_: mkOption { type = types.attrsOf (types.submodule pamRule); default = { }; });
    };
    config.rules.session = {
      unix = { order = 10200; control = "required"; modulePath = "${pkgs.pam}/lib/security/pam_unix.so"; };
      motd = {
        order = 12000;
        enable = lib.mkDefault false;
        control = "optional";
        modulePath = "${pkgs.pam}/lib/security/pam_motd.so";
      };
    };
  };

  userOptions = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      uid = mkOption { type = types.nullOr types.int; default = null; };
      isNormalUser = mkOption { type = types.bool; default = false; };
      isSystemUser = mkOption { type = types.bool; default = false; };
      group = mkOption { type = types.str; default = ""; };
      description = mkOption { type = types.str; default = ""; };
      extraGroups = strList;
      password = mkOption { type = types.nullOr types.str; default = null; };
      initialPassword = mkOption { type = types.nullOr types.str; default = null; };
    };
  };

  groupOptions = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      gid = mkOption { type = types.nullOr types.int; default = null; };
      members = strList;
    };
  };
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; default = [ ]; };
    networking.hostName = mkOption { type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$"; default = "nixos"; };
    nix.enable = mkOption { type = types.bool; default = true; };
    nix.package = mkOption { type = types.package; default = pkgs.nix; };
    services.openssh.enable = mkOption { type = types.bool; default = false; };
    virtualisation.libvirtd.enable = mkOption { type = types.bool; default = false; };
    environment.etc = mkOption { type = types.attrsOf (types.submodule etcOptions); default = { }; };
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
    systemd.services = mkOption { type = types.attrsOf (types.submodule serviceOptions); default = { }; };
    systemd.timers = mkOption { type = types.attrsOf types.anything; default = { }; };
    systemd.tmpfiles.rules = strList;
    security.pam.services = mkOption { type = types.attrsOf (types.submodule pamService); default = { }; };
    users.users = mkOption { type = types.attrsOf (types.submodule userOptions); default = { }; };
    users.groups = mkOption { type = types.attrsOf (types.submodule groupOptions); default = { }; };
    users.motd = mkOption { type = types.nullOr types.lines; default = null; };
    system.stateVersion = mkOption { type = types.str; default = "24.11"; };
  };

  config = {
    # PAM services NixOS defines by itself.
    security.pam.services = {
      login = { };
      su = { };
      sshd = lib.mkIf config.services.openssh.enable { };
    };

    # nixos/modules/config/users-groups.nix: root, and the checks of every user.
    users.users.root = { uid = 0; group = "root"; };
    users.groups.root.gid = 0;
    assertions = lib.concatLists (lib.mapAttrsToList
      (_: user: [
        {
          assertion = (user.isSystemUser || (user.uid != null && user.uid < 1000)) != user.isNormalUser;
          message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.";
        }
        {
          assertion = user.group != "";
          message = "users.users.${user.name}.group is unset. This used to default to nogroup, but this is unsafe.";
        }
      ])
      config.users.users);
  };
}
