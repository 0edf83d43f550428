# Evaluates nix/module.nix together with a user's NixOS module under nixpkgs' own module system
# (lib.evalModules of the nixpkgs lib vendored in vendor/nixpkgs-lib), with stubs for the NixOS
# options the module touches (nixos-stub.nix) and for the packages it refers to (pkgs.nix), on a
# machine without nixpkgs:
#
#   nix-instantiate --eval --strict --json --option store dummy:// test/nix/eval-module.nix \
#     --arg userConfig '{ hypervisor.updateChecker = { enable = true; schedule = "weekly"; }; }'
#
# `userConfig` is any NixOS module (an attribute set or a function of { config, lib, pkgs, ... }).
# Failed assertions abort the evaluation with their messages, as building a NixOS system does
# (nixos/modules/system/activation/top-level.nix checks config.assertions the same way).
{ userConfig ? { } }:
let
  lib = import ./vendor/nixpkgs-lib/lib;
  pkgs = import ./pkgs.nix { inherit lib; };
  eval = lib.evalModules {
    modules = [ ./nixos-stub.nix ../../nix/module.nix userConfig ];
    specialArgs = { inherit pkgs; modulesPath = "/nixos/modules"; };
  };
  inherit (eval) config;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  checked = if failed == [ ] then config else throw "Failed assertions:\n- ${builtins.concatStringsSep "\n- " failed}";
  etc = checked.environment.etc;
  cfg = checked.hypervisor.updateChecker;
  package = cfg.package;
  buildArgs = package.buildNpmPackageArgs;
  root = toString ../..;
  # What the package's source filter keeps, for a few paths relative to the repository.
  keeps = rel: type: buildArgs.src.filter "${root}/${rel}" type;
in
{
  service = checked.systemd.services.hv-daemon or null;
  chatService = checked.systemd.services.hv-chat or null;
  # Users and groups the configuration declares (root comes from the NixOS stub).
  users = builtins.mapAttrs (_: u: { inherit (u) isSystemUser isNormalUser group description; }) checked.users.users;
  groups = builtins.attrNames checked.users.groups;
  timers = builtins.attrNames (checked.systemd.timers or { });
  configJson = if etc ? "hv/config.json" then etc."hv/config.json".text else null;
  # The packages on the PATH: name, the script that builds it (for the command wrapper), main program.
  systemPackages = map
    (p: { inherit (p) name; storePath = toString p; buildCommand = p.buildCommand or null; mainProgram = p.meta.mainProgram or null; })
    checked.environment.systemPackages;
  tmpfiles = checked.systemd.tmpfiles.rules;
  pam = builtins.mapAttrs (_: s: s.rules.session) checked.security.pam.services;
  package = {
    inherit (package) name pname version;
    storePath = toString package;
    buildArgs = builtins.removeAttrs buildArgs [ "src" "npmDeps" "npmConfigHook" ];
    npmDeps = {
      inherit (buildArgs.npmDeps) name;
      npmRoot = toString buildArgs.npmDeps.npmRoot.origSrc;
      npmRootIsSrc = buildArgs.npmDeps.npmRoot == buildArgs.src;
      urls = buildArgs.npmDeps.urls;
    };
    src = {
      origSrc = toString buildArgs.src.origSrc;
      keeps = lib.genAttrs [ "package.json" "package-lock.json" "src" "scripts" "tsconfig.build.json" "test" "test/fixtures" ] (rel: keeps rel "directory");
      drops = lib.genAttrs [ "node_modules" "dist" ".git" "nix" "test/nix/vendor" "flake.lock" "result" ] (rel: !(keeps rel "directory"));
    };
  };
}
