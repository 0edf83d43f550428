# A stand-in for the few nixpkgs packages and builders nix/ refers to. Packages are plain
# attribute sets that look like derivations (type = "derivation", outPath), so they interpolate
# into strings and serialise to JSON as store paths, but nothing is built or written to the store.
# The builders check their arguments the way the real ones would fail on them.
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

  npmConfigHook = fakeDrv "npm-config-hook" { isImportNpmLockHook = true; };

  # pkgs/build-support/node/import-npm-lock: every entry of package-lock.json's `packages` that
  # has a `resolved` URL is fetched with fetchurl, whose hash is the entry's `integrity`; an entry
  # without `resolved` is not fetched at all, so the offline `npm install` of the build would not
  # find it. Both fail here, at evaluation, instead of in a build nobody runs on this machine.
  importNpmLock = {
    __functor = _: { npmRoot ? null, package ? null, packageLock ? null, pname ? null, version ? null, fetcherOpts ? { } }:
      let
        lock = if packageLock != null then packageLock else throw "importNpmLock: the stub needs packageLock";
        problems = lib.concatLists (lib.mapAttrsToList
          (key: entry:
            if key == "" || entry.link or false then [ ]
            else if !(entry ? resolved) then
              # npm skips an optional package for another OS without fetching it; any other
              # package without a URL would be missing from the offline install.
              lib.optional (!(entry.optional or false && entry ? os && !(builtins.elem "linux" entry.os)))
                "${key} has no resolved URL (it would not be fetched)"
            else if builtins.match "https://.+\\.tgz" entry.resolved == null then [ "${key}: unexpected URL ${entry.resolved}" ]
            else if builtins.match "sha(256|384|512)-.+" (entry.integrity or "") == null then [ "${key} has no integrity hash (fetchurl needs one)" ]
            else [ ])
          lock.packages);
        fetched = lib.filterAttrs (key: entry: key != "" && entry ? resolved) lock.packages;
      in
      if problems != [ ] then throw "importNpmLock: ${lib.concatStringsSep "; " problems}"
      else fakeDrv "${package.name or "unknown"}-${package.version or "0.0.0"}-sources" {
        inherit npmRoot package;
        urls = lib.mapAttrs (_: e: { url = e.resolved; hash = e.integrity; }) fetched;
      };
    inherit npmConfigHook;
  };

  pkgs = {
    inherit lib importNpmLock;
    stdenv.hostPlatform.system = "x86_64-linux";
    runtimeShell = "/nix/store/00000000000000000000000000000000-bash-5.2/bin/bash";
    nix = pkg "nix";
    git = pkg "git";
    gitMinimal = pkg "git-minimal";
    util-linux = pkg "util-linux";
    systemd = pkg "systemd";
    libvirt = pkg "libvirt";
    coreutils = pkg "coreutils";
    pam = pkg "linux-pam";
    nodejs_22 = pkg "nodejs-22";
    iproute2 = pkg "iproute2";
    makeWrapper = pkg "make-shell-wrapper-hook";

    writeText = name: text: fakeDrv name { inherit text; };
    # The build script is kept as `buildCommand`, as the real runCommand does, for the tests to read.
    runCommand = name: env: buildCommand: fakeDrv name (env // { inherit buildCommand; passthru = env.passthru or { }; } // (env.passthru or { }));
    formats.json = { }: {
      type = jsonValue;
      generate = name: value: pkgs.writeText name (builtins.toJSON value);
    };

    callPackage = fn: overrides:
      let f = if builtins.isPath fn then import fn else fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);

    # Checks the arguments buildNpmPackage needs; builds nothing. Without `npmDeps` it would call
    # fetchNpmDeps with `npmDepsHash`, a hash that has to be maintained by hand: refused here.
    buildNpmPackage = args:
      assert builtins.isString args.pname && builtins.isString args.version;
      assert args ? src;
      if args ? npmDepsHash then throw "buildNpmPackage: npmDepsHash is set; hv's npm dependencies come from importNpmLock"
      else if !(args ? npmDeps) then throw "buildNpmPackage: no npmDeps (it would fall back to fetchNpmDeps and a hand-maintained hash)"
      else if !((args.npmConfigHook or { }).isImportNpmLockHook or false) then throw "buildNpmPackage: npmDeps from importNpmLock need npmConfigHook = importNpmLock.npmConfigHook"
      else fakeDrv "${args.pname}-${args.version}" {
        inherit (args) pname version;
        meta = args.meta or { };
        buildNpmPackageArgs = args;
      };
  };
in
pkgs
