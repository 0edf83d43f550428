# Evaluates the outputs of flake.nix with a stand-in for its nixpkgs input (the vendored lib and
# the stub packages of pkgs.nix, with testers.runNixOSTest as in eval-vm-test.nix): the package,
# the NixOS module (evaluated with the stubs of nixos-stub.nix) and the VM check. The real input
# is pinned in flake.lock and cannot be fetched on a machine without network.
let
  lib = import ./vendor/nixpkgs-lib/lib;
  stubPkgs = import ./pkgs.nix { inherit lib; };
  evalNixos = modules: (lib.evalModules {
    modules = [ ./nixos-stub.nix ] ++ modules;
    specialArgs = { pkgs = stubPkgs; };
  }).config;
  pkgsFor = system: stubPkgs // {
    stdenv.hostPlatform.system = system;
    testers.runNixOSTest = { name, nodes, ... }: {
      inherit name;
      nodes = builtins.mapAttrs (_: node: evalNixos [ node ]) nodes;
    };
  };
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor;
  };
  flake = import ../../flake.nix;
  outputs = flake.outputs { inherit self nixpkgs; };
  self = outputs // { outPath = toString ../..; };
  host = evalNixos [ outputs.nixosModules.default { hypervisor.updateChecker.enable = true; } ];
in
{
  inputs = builtins.mapAttrs (_: i: i.url) flake.inputs;
  systems = builtins.attrNames outputs.packages;
  package = outputs.packages.x86_64-linux.default.name;
  moduleService = host.systemd.services.hv-daemon.serviceConfig.ExecStart;
  modulePackage = host.hypervisor.updateChecker.package.name;
  modulePackageIsFlakePackage = host.hypervisor.updateChecker.package == outputs.packages.x86_64-linux.default;
  vmTest = {
    inherit (outputs.checks.x86_64-linux.vm-test) name;
    nodes = builtins.attrNames outputs.checks.x86_64-linux.vm-test.nodes;
  };
}
