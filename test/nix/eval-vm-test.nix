# Evaluates the node configurations of nix/tests/vm-test.nix under the stand-in module system, so
# a typo in the VM test's options shows here rather than on someone's NixOS machine. The driver
# and the VM itself need nixpkgs and are out of reach; `testScript` is returned as text.
let
  lib = import ./lib.nix;
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
  machine = test.nodes.machine;
in
{
  inherit (test) name testScript;
  configJson = machine.environment.etc."hv/config.json".text;
  execStart = machine.systemd.services.hv-daemon.serviceConfig.ExecStart;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) machine.assertions);
}
