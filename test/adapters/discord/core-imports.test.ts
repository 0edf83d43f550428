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

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PLATFORM = /^(discord\.js|@discordjs\/|@slack\/|nodemailer)/;

/** Static (value) imports and re-exports of a module; `import type` and dynamic import() excluded. */
function staticImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) if (m[1]) out.push(m[1]);
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/**
 * Every platform import reachable from `roots` through static imports: what loading the core
 * would load. Lazy `import()` (adapters/registry.ts) is allowed, that is the point of it.
 */
function platformImports(root: string, roots: string[]): string[] {
  const seen = new Set<string>();
  const found: string[] = [];
  const queue = roots.flatMap((r) => tsFiles(join(root, r)));
  while (queue.length) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of staticImports(readFileSync(file, 'utf8'))) {
      if (PLATFORM.test(spec)) found.push(`${relative(root, file)} imports ${spec}`);
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      if (existsSync(target)) queue.push(target);
    }
  }
  return found.sort();
}

describe('the core knows no chat platform', () => {
  it('src/ and commands/ import neither discord.js nor @slack/bolt (nor nodemailer), directly or through static imports', () => {
    expect(platformImports(repo, ['src', 'commands'])).toEqual([]);
  });

  it('the scan does find such an import, also two modules away', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hv-imports-'));
    try {
      mkdirSync(join(dir, 'src'));
      mkdirSync(join(dir, 'adapters'));
      writeFileSync(
        join(dir, 'src', 'a.ts'),
        "import { b } from '../adapters/b.js';\nimport type { X } from 'discord.js';\n",
      );
      writeFileSync(
        join(dir, 'adapters', 'b.ts'),
        "import { App } from '@slack/bolt';\nexport const b = App;\n",
      );
      expect(platformImports(dir, ['src'])).toEqual(['adapters/b.ts imports @slack/bolt']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
