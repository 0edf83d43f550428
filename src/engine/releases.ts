/** A NixOS release like 24.05, comparable as a number (2405). */
export interface Release {
  year: number;
  month: number;
}

const RELEASE_BRANCH = /^nixos-(\d{2})\.(\d{2})$/;
const TRACKED_REF = /^(?:refs\/heads\/)?(?:nixos|nixpkgs|release)-(\d{2})\.(\d{2})(?:-[a-z0-9-]+)?$/;

export function releaseOfBranch(branch: string): Release | null {
  const m = RELEASE_BRANCH.exec(branch);
  return m ? { year: Number(m[1]), month: Number(m[2]) } : null;
}

/** The release a tracked ref follows: nixos-24.05, nixos-24.05-small, release-24.05 → 24.05. */
export function releaseOfRef(ref: string | undefined): Release | null {
  const m = ref ? TRACKED_REF.exec(ref) : null;
  return m ? { year: Number(m[1]), month: Number(m[2]) } : null;
}

/** The release of a NixOS version string such as "24.05.20240903.abcdef (Uakari)". */
export function releaseOfVersion(version: string | undefined): Release | null {
  const m = version ? /^(\d{2})\.(\d{2})/.exec(version) : null;
  return m ? { year: Number(m[1]), month: Number(m[2]) } : null;
}

export function compareReleases(a: Release, b: Release): number {
  return a.year * 100 + a.month - (b.year * 100 + b.month);
}

export function releaseName(r: Release): string {
  return `${String(r.year).padStart(2, '0')}.${String(r.month).padStart(2, '0')}`;
}

/** Release branches (`nixos-YY.MM` exactly) newer than the tracked release, oldest first. */
export function newerReleaseBranches<T extends { branch: string }>(heads: T[], tracked: Release | null): T[] {
  if (!tracked) return [];
  return heads
    .map((h) => ({ h, r: releaseOfBranch(h.branch) }))
    .filter((x): x is { h: T; r: Release } => x.r !== null && compareReleases(x.r, tracked) > 0)
    .sort((a, b) => compareReleases(a.r, b.r))
    .map((x) => x.h);
}
