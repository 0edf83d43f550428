import { type Release, releaseName } from './releases.js';

/** The branch a flake URL names and where it sits in the URL, so that only it can be replaced. */
export interface UrlRef {
  ref: string;
  start: number;
  end: number;
}

/**
 * The ref of a flake URL: `?ref=` (git+https:, git+file:, git+ssh:, github:…?ref=), else the third
 * path segment of `github:`/`gitlab:`/`sourcehut:` URLs, else the second of an indirect one
 * (`nixpkgs/nixos-24.05`, `flake:nixpkgs/nixos-24.05`). Undefined when the URL names no ref (a
 * tarball, a default branch) or names it twice.
 */
export function refOfUrl(url: string): UrlRef | undefined {
  const q = [...url.matchAll(/[?&]ref=([^&#]*)/g)];
  if (q.length > 1) return undefined;
  const m = q[0];
  if (m) {
    const start = (m.index as number) + m[0].length - (m[1] as string).length;
    return { ref: decodeURIComponent(m[1] as string), start, end: start + (m[1] as string).length };
  }
  const hosted = /^(?:github|gitlab|sourcehut):[^/?#]+\/[^/?#]+\/([^?#]+)/.exec(url);
  const indirect = /^(?:flake:)?[A-Za-z][\w-]*\/([^?#/]+)(?:[?#]|$)/.exec(url);
  const hit = hosted ?? (url.includes('://') ? null : indirect);
  if (!hit) return undefined;
  const ref = hit[1] as string;
  const start = hit[0].length - ref.length;
  return { ref, start, end: start + ref.length };
}

/**
 * The same ref on another release, keeping its flavour and form: `nixos-24.11` → `nixos-25.05`,
 * `nixos-24.11-small` → `nixos-25.05-small`, `refs/heads/release-24.11` → `refs/heads/release-25.05`.
 */
export function refOnRelease(ref: string, to: Release): string {
  return ref.replace(/(\d{2})\.(\d{2})/, releaseName(to));
}
