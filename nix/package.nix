# hv, built from this repository with buildNpmPackage:
#
#   pkgs.callPackage ./nix/package.nix { }
#
# `npm run build` compiles dist/; the install step (npmInstallHook) copies the files package.json
# publishes plus the production dependencies, and writes one wrapper per `bin` entry of
# package.json (hv, hv-check-updates, hv-upgrade-test, hv-system-upgrade) that runs it with Node 22.
{ lib, buildNpmPackage, nodejs_22, git }:
let
  packageJson = lib.importJSON ../package.json;
  root = toString ../.;
in
buildNpmPackage {
  pname = "hv";
  inherit (packageJson) version;

  # The repository without what is built, installed or only needed for development, so that
  # neither a local build nor an edit of the Nix files changes the source hash.
  src = lib.cleanSourceWith {
    name = "hv-source";
    src = ../.;
    filter = path: type:
      let rel = lib.removePrefix "${root}/" (toString path); in
      !(builtins.elem rel [ "node_modules" "dist" ".git" "nix" ".direnv" ] || lib.hasPrefix "result" rel);
  };

  # Pins the npm dependencies of package-lock.json. After every change of package-lock.json:
  #   nix run nixpkgs#prefetch-npm-deps -- package-lock.json
  # and paste the printed sha256-… here (or build once with lib.fakeHash, as here, and copy the
  # hash from the "got:" line of the hash mismatch error).
  npmDepsHash = lib.fakeHash;

  nodejs = nodejs_22;

  # dist/ is built by `npm run build`; keep `npm pack` (used to pick the files to install) from
  # running the `prepare` script, which would compile everything a second time.
  npmPackFlags = [ "--ignore-scripts" ];

  # hv runs git (git ls-remote) for update checks; the system's own git, if any, comes first.
  makeWrapperArgs = [ "--suffix" "PATH" ":" (lib.makeBinPath [ git ]) ];

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "hv";
    platforms = lib.platforms.linux;
  };
}
