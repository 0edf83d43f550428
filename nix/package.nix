# hv, built from this repository with buildNpmPackage:
#
#   pkgs.callPackage ./nix/package.nix { }
#
# No hash to maintain: importNpmLock (nixpkgs 24.05 or later) fetches every npm package with the
# sha512 `integrity` package-lock.json records for it, so a change of package-lock.json needs no
# edit here. `npm run build` compiles dist/ (tsc, then the esbuild bundle); the install step
# (npmInstallHook) copies the files package.json publishes plus the production dependencies, and
# writes one wrapper per `bin` entry of package.json (hv, hv-check-updates, hv-upgrade-test,
# hv-system-upgrade) that runs it with Node 22. The chat process gets its wrapper in
# libexec/hv/hv-chat, off the PATH: only hv-chat.service (nix/module.nix) or `hv daemon` starts it.
{ lib, buildNpmPackage, importNpmLock, nodejs_22, git, makeWrapper }:
let
  packageJson = lib.importJSON ../package.json;
  root = toString ../.;

  # Paths (relative to the repository) that are built, installed, only for development, or only
  # for the Nix tests, so that neither a local build nor an edit of them changes the source.
  excluded = [ "node_modules" "dist" ".git" "nix" ".direnv" "flake.nix" "flake.lock" "test/nix/vendor" ];

  src = lib.cleanSourceWith {
    name = "hv-source";
    src = ../.;
    filter = path: type:
      let rel = lib.removePrefix "${root}/" (toString path); in
      !(builtins.elem rel excluded || lib.hasPrefix "result" rel);
  };

  # npm writes package-lock.json without `resolved` URLs when `omit-lockfile-registry-resolved`
  # is set (as on the machines hv is developed on); npm itself then fetches from its registry.
  # importNpmLock fetches only entries that name a URL, so fill in the npm registry's tarball URL
  # (<registry>/<name>/-/<name without scope>-<version>.tgz) for each entry that has none; the
  # `integrity` hash of the entry still decides what is accepted.
  #
  # Optional packages for other operating systems (esbuild's, rollup's and Biome's binaries for
  # darwin, win32, freebsd, ...: about half of all tarballs by size) get no URL: hv builds on Linux
  # only (meta.platforms), and `npm install` skips an optional package whose `os` does not match
  # before it looks for its tarball, so they need not be downloaded.
  registry = "https://registry.npmjs.org";
  otherOs = entry:
    entry.optional or false && entry ? os
    && !(builtins.any (lib.hasPrefix "!") entry.os) && !(builtins.elem "linux" entry.os);
  withResolved = key: entry:
    if key == "" || entry ? resolved || entry.link or false || !(entry ? integrity) || otherOs entry then entry
    else
      let name = entry.name or (lib.last (lib.splitString "node_modules/" key)); in
      entry // { resolved = "${registry}/${name}/-/${baseNameOf name}-${entry.version}.tgz"; };
  packageLock =
    let lock = lib.importJSON ../package-lock.json; in
    lock // { packages = lib.mapAttrs withResolved lock.packages; };
in
buildNpmPackage {
  pname = "hv";
  inherit (packageJson) version;
  inherit src;

  # Every package of the lock but those for other operating systems, development tools included
  # (tsc and esbuild build dist/), is fetched by URL and checked against its `integrity`. The
  # Linux binaries of esbuild for every CPU are fetched; `npm install` keeps only the optional
  # package whose `cpu` matches, as it does outside Nix, and esbuild's install script (run by
  # `npm rebuild`) finds its @esbuild/linux-* binary, a static executable, without a download.
  npmDeps = importNpmLock {
    npmRoot = src;
    package = packageJson;
    inherit packageLock;
  };
  # npmHooks.npmConfigHook expects a prefetched npm cache; importNpmLock's hook installs from the
  # store paths it wrote into package.json and package-lock.json.
  npmConfigHook = importNpmLock.npmConfigHook;

  nodejs = nodejs_22;

  # dist/ is built by `npm run build`; keep `npm pack` (used to pick the files to install) from
  # running the `prepare` script, which would compile everything a second time.
  npmPackFlags = [ "--ignore-scripts" ];

  # hv runs git (git ls-remote) for update checks; the system's own git, if any, comes first.
  makeWrapperArgs = [ "--suffix" "PATH" ":" (lib.makeBinPath [ git ]) ];

  # The unprivileged chat process (the bundle's second entry, dist/bundle/hv-chat.mjs), run with
  # the same Node as hv. It runs no git, nix or other tool, so its PATH gets nothing.
  nativeBuildInputs = [ makeWrapper ];
  postInstall = ''
    makeWrapper ${nodejs_22}/bin/node $out/libexec/hv/hv-chat \
      --add-flags $out/lib/node_modules/${packageJson.name}/dist/bundle/hv-chat.mjs
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "hv";
    platforms = lib.platforms.linux;
  };
}
