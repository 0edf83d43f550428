# Evaluates nix/module.nix together with a user's NixOS module under the stand-in module system
# (lib.nix, nixos-stub.nix, pkgs.nix), on a machine without nixpkgs:
#
#   nix-instantiate --eval --strict --json --option store dummy:// test/nix/eval-module.nix \
#     --arg userConfig '{ hypervisor.updateChecker = { enable = true; schedule = "weekly"; }; }'
#
# `userConfig` is any NixOS module (an attribute set or a function of { config, lib, pkgs, ... }).
# Failed assertions abort the evaluation with their messages, as a NixOS build does.
{ userConfig ? { } }:
let
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit lib; };
  eval = lib.evalModules {
    modules = [ ./nixos-stub.nix ../../nix/module.nix userConfig ];
    specialArgs = { inherit pkgs; modulesPath = "/nixos/modules"; };
  };
  inherit (eval) config;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  checked = if failed == [ ] then config else throw "Failed assertions:\n- ${builtins.concatStringsSep "\n- " failed}";
  etc = checked.environment.etc;
in
{
  service = checked.systemd.services.hv-daemon or null;
  configJson = if etc ? "hv/config.json" then etc."hv/config.json".text else null;
  systemPackages = checked.environment.systemPackages;
  tmpfiles = checked.systemd.tmpfiles.rules;
  pam = builtins.mapAttrs (_: s: s.rules.session) checked.security.pam.services;
  package = {
    inherit (checked.hypervisor.updateChecker.package) name pname version;
    buildArgs = builtins.removeAttrs checked.hypervisor.updateChecker.package.buildNpmPackageArgs [ "src" ];
  };
}
