# Evaluates a copy of nix/package.nix (with package.json and package-lock.json beside it, as in
# the repository) with the stub packages of pkgs.nix, forcing what importNpmLock was given.
{ packageFile }:
let
  lib = import ./vendor/nixpkgs-lib/lib;
  pkgs = import ./pkgs.nix { inherit lib; };
  hv = pkgs.callPackage packageFile { };
in
{
  inherit (hv) name;
  urls = builtins.length (builtins.attrNames hv.buildNpmPackageArgs.npmDeps.urls);
}
