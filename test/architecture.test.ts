import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The folders the scan covers; test files (`*.test.ts`) are not part of the program. */
const SCANNED = ['src', 'adapters', 'commands'];

/**
 * The only files in src/ that may import adapters/ or commands/: they choose the adapters and
 * commands a process has and hand them to the core. The daemon's root is `commands/daemon.ts`
 * (outside src/, so it needs no exception here).
 */
const COMPOSITION_ROOTS = [
  'src/cli/hv.ts',
  'src/cli/main.ts',
  'src/bus/operation-child.ts',
  'src/chatd/chat-main.ts',
];

/**
 * Every module specifier a file names: `import … from '…'`, `import '…'`, `export … from '…'` and
 * `import('…')`, type-only ones included. A regular expression over the source, not a TypeScript
 * parse: the code base writes imports one way (Biome formats them), and comments or strings that
 * merely look like an import would only make the scan stricter.
 */
function specifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) if (m[1]) out.push(m[1]);
  return out;
}

function tsFiles(root: string, dir: string): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(root, p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** The import graph of the scanned folders: repo-relative file → repo-relative files it imports. */
function importGraph(root: string, dirs = SCANNED): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of dirs.flatMap((d) => tsFiles(root, d))) {
    const targets: string[] = [];
    for (const spec of specifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = relative(root, resolve(root, dirname(file), spec.replace(/\.js$/, '.ts')));
      if (!targets.includes(target)) targets.push(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

/** "file imports target" for every file in src/ other than the roots that imports adapters/ or commands/. */
function coreViolations(graph: Map<string, string[]>, roots = COMPOSITION_ROOTS): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    if (!file.startsWith('src/') || roots.includes(file)) continue;
    for (const t of targets)
      if (t.startsWith('adapters/') || t.startsWith('commands/')) out.push(`${file} imports ${t}`);
  }
  return out.sort();
}

/**
 * Every import cycle found by a depth-first search, each as its path `a → b → … → a`. Each back
 * edge gives one cycle, so fixing the reported ones and rerunning finds any that remain.
 */
function importCycles(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'active');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue; // outside the scanned folders
      const s = state.get(next);
      if (s === 'active') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return cycles;
}

describe('the core imports no adapter and no command; nothing imports in a circle', () => {
  const graph = importGraph(repo);

  it('scans the whole program', () => {
    expect(graph.size).toBeGreaterThan(100);
    for (const root of COMPOSITION_ROOTS) expect(graph.has(root), root).toBe(true);
  });

  it('no file in src/ but the composition roots imports from adapters/ or commands/ (type-only imports too)', () => {
    expect(coreViolations(graph)).toEqual([]);
  });

  it('there is no import cycle among src/, adapters/ and commands/ (static, type-only and dynamic imports)', () => {
    const cycles = importCycles(graph);
    expect(cycles, `import cycles:\n${cycles.join('\n')}`).toEqual([]);
  });

  it('the scan finds a forbidden import and a cycle, also through type-only and dynamic imports', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hv-arch-'));
    try {
      for (const d of ['src/cli', 'src/engine', 'adapters', 'commands'])
        mkdirSync(join(dir, d), { recursive: true });
      const files: Record<string, string> = {
        'src/cli/main.ts': "import { commands } from '../../commands/index.js';\n",
        'src/engine/a.ts':
          "import type { X } from '../../adapters/types.js';\nexport const a = () => import('./b.js');\n",
        'src/engine/b.ts': "export { c } from '../../commands/c.js';\n",
        'commands/index.ts': "import { c } from './c.js';\n",
        'commands/c.ts': "import { a } from '../src/engine/a.js';\nexport const c = 1;\n",
        'adapters/types.ts': 'export type X = 1;\n',
      };
      for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
      const g = importGraph(dir);
      expect(coreViolations(g, ['src/cli/main.ts'])).toEqual([
        'src/engine/a.ts imports adapters/types.ts',
        'src/engine/b.ts imports commands/c.ts',
      ]);
      expect(importCycles(g)).toEqual(['commands/c.ts → src/engine/a.ts → src/engine/b.ts → commands/c.ts']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
