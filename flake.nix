{
  description = "hv — upgrade manager and chat-ops hub for NixOS hypervisor hosts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: { default = pkgs.callPackage ./nix/package.nix { }; });

      # imports = [ hv.nixosModules.default ]; hypervisor.updateChecker.enable = true;
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        hypervisor.updateChecker.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      checks = forAllSystems (pkgs: {
        vm-test = import ./nix/tests/vm-test.nix { inherit pkgs; };
      });
    };
}
