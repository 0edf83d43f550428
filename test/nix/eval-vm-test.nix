# Evaluates the node configurations of nix/tests/vm-test.nix under nixpkgs' module system (the
# vendored lib) with the stubs of eval-module.nix, so a typo in the VM test's options shows here
# rather than on someone's NixOS machine. The driver and the VM itself need nixpkgs and KVM and
# are out of reach; `testScript` is returned as text.
let
  lib = import ./vendor/nixpkgs-lib/lib;
  stubPkgs = import ./pkgs.nix { inherit lib; };
  pkgs = stubPkgs // {
    testers.runNixOSTest = { name, nodes, testScript, ... }: {
      inherit name testScript;
      nodes = builtins.mapAttrs
        (_: node: (lib.evalModules {
          modules = [ ./nixos-stub.nix node ];
          specialArgs = { pkgs = stubPkgs; };
        }).config)
        nodes;
    };
  };
  test = import ../../nix/tests/vm-test.nix { inherit pkgs; };
  inherit (test.nodes) machine manual;
  failed = node: map (a: a.message) (builtins.filter (a: !a.assertion) node.assertions);
in
{
  inherit (test) name testScript;
  configJson = machine.environment.etc."hv/config.json".text;
  execStart = machine.systemd.services.hv-daemon.serviceConfig.ExecStart;
  chatExecStart = machine.systemd.services.hv-chat.serviceConfig.ExecStart or null;
  commands = map (p: p.buildCommand or "") machine.environment.systemPackages;
  failedAssertions = failed machine ++ failed manual;
  manual = {
    hasService = manual.systemd.services ? hv-daemon;
    hasConfig = manual.environment.etc ? "hv/config.json";
    commands = map (p: p.buildCommand or "") manual.environment.systemPackages;
  };
}
