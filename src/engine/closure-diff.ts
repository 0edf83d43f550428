/**
 * What changes between two system closures, from store path names alone (as nvd and
 * `nix store diff-closures` do): packages whose version changed, were added or removed, how many
 * were rebuilt at the same version, closure sizes and the kernel. Pure: the store query is in
 * closure.ts. Names are split the way Nix splits them (DrvName: the name ends at the first `-`
 * followed by a non-letter) after the output name is stripped (`-bin`, `-lib`, `-modules`…), so that
 * the list agrees with `nix store diff-closures` on the same pair.
 */

/** One store path of a closure, as `nix path-info` reports it. */
export interface StorePathInfo {
  path: string;
  narSize: number;
}

/** A package whose set of versions differs between the two closures. */
export interface PackageChange {
  name: string;
  /** Versions only in the old closure (empty: added). `""` is a path without a version. */
  from: string[];
  /** Versions only in the new closure (empty: removed). */
  to: string[];
  /** Bytes: the package's paths in the new closure minus those in the old one. */
  sizeDelta: number;
}

/** One side of a diff: which system, how many paths, how many bytes, which kernel. */
export interface ClosureSide {
  path: string;
  paths: number;
  size: number;
  kernel?: string;
}

/** A change worth a headline on a hypervisor (kernel, QEMU, libvirt, … and `test.watch`). */
export interface Highlight {
  name: string;
  kind: 'changed' | 'added' | 'removed';
  from: string[];
  to: string[];
}

export interface ClosureDiff {
  from: ClosureSide;
  to: ClosureSide;
  /** Old and new version sets both non-empty. Sorted by name. */
  changed: PackageChange[];
  /** New versions only (the package, or another version of it, is new). */
  added: PackageChange[];
  /** Old versions only. */
  removed: PackageChange[];
  /** Packages with the same versions whose store paths differ (rebuilt), by name. */
  rebuilt: string[];
  /** Set when the kernel version differs. */
  kernel?: { from?: string; to?: string };
  /** The changes among the always-watched packages and the configured watch list, kernel first. */
  highlights: Highlight[];
}

/**
 * Packages that always matter on a hypervisor, and the label people know them by. The kernel
 * (`linux`) is reported from the toplevel's `kernel` link instead (see ClosureDiff.kernel).
 */
export const ALWAYS_WATCHED: Readonly<Record<string, string>> = {
  qemu: 'QEMU',
  libvirt: 'libvirt',
  systemd: 'systemd',
  glibc: 'glibc',
  ovmf: 'OVMF',
};

const STORE_NAME = /^[0-9a-df-np-sv-z]{32}-(.+)$/;
const LOWER = /^[a-z]+$/;

/** `/nix/store/<hash>-qemu-9.1.0` → `qemu-9.1.0`; a path that is not a store path: its base name. */
export function storeName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return STORE_NAME.exec(base)?.[1] ?? base;
}

/** Nix's DrvName split of a store path name, after the output name is stripped. */
export function parseStoreName(storePathName: string): { name: string; version: string } {
  // The output-name suffix Nix strips first (diff-closures.cc: `(.*)-([a-z]+|lib32|lib64)`), by hand:
  // this runs for every path of two closures.
  const dash = storePathName.lastIndexOf('-');
  const suffix = dash >= 0 ? storePathName.slice(dash + 1) : '';
  const stripped =
    suffix && (suffix === 'lib32' || suffix === 'lib64' || LOWER.test(suffix))
      ? storePathName.slice(0, dash)
      : storePathName;
  for (let i = stripped.indexOf('-'); i >= 0 && i < stripped.length - 1; i = stripped.indexOf('-', i + 1)) {
    const c = stripped.charCodeAt(i + 1) | 0x20; // ASCII lower case
    if (c < 0x61 || c > 0x7a) return { name: stripped.slice(0, i), version: stripped.slice(i + 1) };
  }
  return { name: stripped, version: '' };
}

interface Group {
  /** version → the store paths of that version */
  versions: Map<string, Set<string>>;
  size: number;
}

function group(closure: Iterable<StorePathInfo>, skip: string): Map<string, Group> {
  const out = new Map<string, Group>();
  for (const p of closure) {
    if (p.path === skip) continue;
    const { name, version } = parseStoreName(storeName(p.path));
    let g = out.get(name);
    if (!g) {
      g = { versions: new Map(), size: 0 };
      out.set(name, g);
    }
    let paths = g.versions.get(version);
    if (!paths) {
      paths = new Set();
      g.versions.set(version, paths);
    }
    paths.add(p.path);
    g.size += p.narSize;
  }
  return out;
}

const EMPTY: Group = { versions: new Map(), size: 0 };

function samePaths(a: Group, b: Group): boolean {
  for (const [v, paths] of a.versions) {
    const other = b.versions.get(v);
    if (!other || other.size !== paths.size) return false;
    for (const p of paths) if (!other.has(p)) return false;
  }
  return true;
}

/** The label a change is highlighted under, or undefined when nobody watches it. */
export function watchedLabel(name: string, watch: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const matches = (w: string) => {
    const k = w.toLowerCase();
    return lower === k || lower.startsWith(`${k}-`) || lower.startsWith(`${k}_`);
  };
  for (const [key, label] of Object.entries(ALWAYS_WATCHED))
    if (matches(key)) return lower === key ? label : name;
  return watch.some(matches) ? name : undefined;
}

export interface DiffInput {
  from: { path: string; closure: StorePathInfo[]; kernel?: string };
  to: { path: string; closure: StorePathInfo[]; kernel?: string };
  /** `test.watch`: more package names to highlight. */
  watch: readonly string[];
}

/**
 * The difference between two closures. The two toplevels themselves are not packages of the
 * system and are left out of the lists (their sides carry them).
 */
export function diffClosures(input: DiffInput): ClosureDiff {
  const { from, to } = input;
  const before = group(from.closure, from.path);
  const after = group(to.closure, to.path);
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  const changed: PackageChange[] = [];
  const added: PackageChange[] = [];
  const removed: PackageChange[] = [];
  const rebuilt: string[] = [];
  for (const name of names) {
    const b = before.get(name) ?? EMPTY;
    const a = after.get(name) ?? EMPTY;
    const gone = [...b.versions.keys()].filter((v) => !a.versions.has(v)).sort();
    const come = [...a.versions.keys()].filter((v) => !b.versions.has(v)).sort();
    const change: PackageChange = { name, from: gone, to: come, sizeDelta: a.size - b.size };
    if (gone.length && come.length) changed.push(change);
    else if (come.length) added.push(change);
    else if (gone.length) removed.push(change);
    else if (!samePaths(b, a)) rebuilt.push(name);
  }
  const size = (c: StorePathInfo[]) => c.reduce((n, p) => n + p.narSize, 0);
  const kernel = from.kernel !== to.kernel ? { from: from.kernel, to: to.kernel } : undefined;
  const highlights: Highlight[] = [];
  for (const [kind, list] of [
    ['changed', changed],
    ['added', added],
    ['removed', removed],
  ] as const) {
    for (const c of list) {
      if (c.name === 'linux') continue; // the kernel has its own line
      if (watchedLabel(c.name, input.watch) !== undefined)
        highlights.push({ name: c.name, kind, from: c.from, to: c.to });
    }
  }
  return {
    from: { path: from.path, paths: from.closure.length, size: size(from.closure), kernel: from.kernel },
    to: { path: to.path, paths: to.closure.length, size: size(to.closure), kernel: to.kernel },
    changed,
    added,
    removed,
    rebuilt,
    ...(kernel ? { kernel } : {}),
    highlights,
  };
}
