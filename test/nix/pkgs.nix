# A stand-in for the few nixpkgs packages and builders nix/ refers to. Packages are plain
# attribute sets that look like derivations (type = "derivation", outPath), so they interpolate
# into strings and serialise to JSON as store paths, but nothing is built or written to the store.
{ lib }:
let
  fakeDrv = name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
      meta = { };
    }
    // attrs;
  pkg = name: fakeDrv name { pname = name; };

  jsonValue = with lib.types;
    nullOr (oneOf [ bool int float str path (attrsOf jsonValue) (listOf jsonValue) ])
    // { description = "JSON value"; };

  pkgs = {
    inherit lib;
    stdenv.hostPlatform.system = "x86_64-linux";
    nix = pkg "nix";
    git = pkg "git";
    gitMinimal = pkg "git-minimal";
    util-linux = pkg "util-linux";
    systemd = pkg "systemd";
    libvirt = pkg "libvirt";
    coreutils = pkg "coreutils";
    pam = pkg "linux-pam";
    nodejs_22 = pkg "nodejs-22";

    writeText = name: text: fakeDrv name { inherit text; };
    formats.json = { }: {
      type = jsonValue;
      generate = name: value: pkgs.writeText name (builtins.toJSON value);
    };

    callPackage = fn: overrides:
      let f = if builtins.isPath fn then import fn else fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);

    # Checks the arguments buildNpmPackage needs; builds nothing.
    buildNpmPackage = args:
      assert builtins.isString args.pname && builtins.isString args.version;
      assert builtins.match "sha256-[A-Za-z0-9+/]{43}=" args.npmDepsHash != null;
      assert args ? src;
      fakeDrv "${args.pname}-${args.version}" {
        inherit (args) pname version;
        meta = args.meta or { };
        buildNpmPackageArgs = args;
      };
  };
in
pkgs
