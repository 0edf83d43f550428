import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HvError } from '../errors.js';

/** The `original` or `locked` attributes of a flake input (see `nix flake metadata`). */
export interface FlakeRefAttrs {
  type: string;
  owner?: string;
  repo?: string;
  url?: string;
  ref?: string;
  rev?: string;
  host?: string;
  dir?: string;
  id?: string;
  path?: string;
  lastModified?: number;
  narHash?: string;
  [k: string]: unknown;
}

export interface LockedInput {
  name: string;
  node: string;
  original: FlakeRefAttrs;
  locked: FlakeRefAttrs & { rev?: string; lastModified?: number };
}

export interface FlakeLock {
  text: string;
  sha256: string;
  json: {
    nodes: Record<
      string,
      { inputs?: Record<string, string | string[]>; locked?: FlakeRefAttrs; original?: FlakeRefAttrs }
    >;
    root: string;
    version: number;
  };
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Parse flake.lock text (e.g. a recorded lock); `where` names it in the error. */
export function parseFlakeLock(text: string, where: string): FlakeLock {
  try {
    const json = JSON.parse(text) as FlakeLock['json'];
    if (!json.nodes || typeof json.root !== 'string') throw new Error('no "nodes"/"root"');
    return { text, sha256: sha256(text), json };
  } catch (e) {
    throw new HvError(
      'flake-lock-invalid',
      `${where} is not a valid flake lock file: ${(e as Error).message}`,
    );
  }
}

/**
 * Nodes whose `locked` attributes differ between two locks (or that only one has), sorted. Empty:
 * both pin exactly the same sources, whatever their formatting.
 */
export function lockedDifferences(a: FlakeLock, b: FlakeLock): string[] {
  const canon = (v: unknown): string =>
    v && typeof v === 'object'
      ? `{${Object.keys(v as object)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k])}`)
          .join(',')}}`
      : JSON.stringify(v);
  const names = new Set([...Object.keys(a.json.nodes), ...Object.keys(b.json.nodes)]);
  return [...names]
    .filter((n) => canon(a.json.nodes[n]?.locked ?? null) !== canon(b.json.nodes[n]?.locked ?? null))
    .sort();
}

export function readFlakeLock(flakeDir: string): FlakeLock {
  const path = join(flakeDir, 'flake.lock');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HvError(
      'flake-lock-missing',
      code === 'ENOENT'
        ? `${path} does not exist; create it once with "nix flake lock" in ${flakeDir}`
        : `cannot read ${path}: ${code}`,
    );
  }
  return parseFlakeLock(text, path);
}

/** The lock node of a root input, following `follows` paths. */
export function lockedInput(lock: FlakeLock, input: string): LockedInput {
  const nodes = lock.json.nodes;
  const rootInputs = nodes[lock.json.root]?.inputs ?? {};
  let ref = rootInputs[input];
  if (ref === undefined) {
    const known = Object.keys(rootInputs);
    throw new HvError(
      'input-missing',
      `flake input "${input}" is not in flake.lock; inputs are: ${known.length ? known.join(', ') : '(none)'}. Set flake.input to one of them.`,
    );
  }
  // A `follows` path: walk from the root through the named inputs.
  let guard = 0;
  while (Array.isArray(ref) && guard++ < 32) {
    let node = lock.json.root;
    for (const step of ref) {
      const next = nodes[node]?.inputs?.[step];
      if (next === undefined)
        throw new HvError('flake-lock-invalid', `input "${input}" follows a missing path`);
      node = typeof next === 'string' ? next : (next[0] ?? '');
    }
    ref = node;
  }
  const nodeName = ref as string;
  const node = nodes[nodeName];
  if (!node?.locked || !node.original)
    throw new HvError(
      'flake-lock-invalid',
      `lock node "${nodeName}" of input "${input}" has no locked/original`,
    );
  return { name: input, node: nodeName, original: node.original, locked: node.locked };
}

/** Render lock attributes as a flake reference URL that any Nix understands. */
export function flakeRefUrl(a: FlakeRefAttrs): string {
  const q = new URLSearchParams();
  for (const k of ['ref', 'rev', 'dir', 'host'] as const)
    if (typeof a[k] === 'string') q.set(k, a[k] as string);
  const qs = q.toString() ? `?${q.toString()}` : '';
  switch (a.type) {
    case 'github':
    case 'gitlab':
    case 'sourcehut':
      return `${a.type}:${a.owner}/${a.repo}${qs}`;
    case 'git':
    case 'hg':
      return `${a.type}+${a.url}${qs}`;
    case 'tarball':
    case 'file':
      return `${a.url}`;
    case 'path':
      return `path:${a.path}`;
    case 'indirect':
      return `${a.id}${a.ref ? `/${a.ref}` : ''}`;
    default:
      return String(a.url ?? a.type);
  }
}
