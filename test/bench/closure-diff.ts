/**
 * Benchmark (issue 15, acceptance 4): two systems of about 3,000 store paths each, diffed by
 * `hv diff` (the whole CLI: node start, config, `nix path-info` per system, the diff, the text) and
 * by `nix store diff-closures`, interleaved in one run. hv is timed cold (its closure cache
 * emptied before every run: what the first diff of a new system costs) and warm (the listings
 * cached, as for every later prompt, status and notification). Prints the medians and the ratios;
 * exits 1 when cold hv is slower than Nix.
 *
 *   npm run build && node dist/test/bench/closure-diff.js [--paths 3000] [--runs 7]
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeClosurePair } from '../fixtures/closures.js';
import { hvBin } from '../fixtures/world.js';
import { benchConfig, numArg } from './util.js';

const paths = numArg('paths', 3000);
const runs = numArg('runs', 7);
const { dir, config } = benchConfig('hv-bench-diff-');

const made = Date.now();
const pair = makeClosurePair({ n: paths, changes: Math.round(paths / 10), tag: 'bench' });
process.stdout.write(
  `systems: ${pair.fromPaths} and ${pair.toPaths} store paths (made in ${Date.now() - made} ms)\n  ${pair.from}\n  ${pair.to}\n`,
);

function time(argv: string[]): { ms: number; out: string } {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, out: r.stdout };
}

const hvArgv = [process.execPath, hvBin, 'diff', '--from', pair.from, '--to', pair.to, '--config', config];
const nixArgv = [
  'nix',
  '--extra-experimental-features',
  'nix-command',
  'store',
  'diff-closures',
  pair.from,
  pair.to,
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

// One warm-up each (page cache, Nix's SQLite), then interleaved so machine noise hits both alike.
const cache = join(dir, 'state', 'cache', 'closures');
const first = time(hvArgv);
time(nixArgv);
const cold: number[] = [];
const warm: number[] = [];
const nix: number[] = [];
for (let i = 0; i < runs; i++) {
  rmSync(cache, { recursive: true, force: true });
  cold.push(time(hvArgv).ms);
  warm.push(time(hvArgv).ms);
  nix.push(time(nixArgv).ms);
}
rmSync(dir, { recursive: true, force: true });
const ratio = median(cold) / median(nix);
const warmRatio = median(warm) / median(nix);
const f = (xs: number[]) =>
  `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
process.stdout.write(
  `${first.out
    .split('\n')
    .filter((l) => /^(Highlights|Kernel|Changed|Added|Removed|Rebuilt|Closure)/.test(l))
    .join('\n')}\n`,
);
process.stdout.write(`hv diff, cold             ${f(cold)}  n=${runs}\n`);
process.stdout.write(`hv diff, warm (cached)    ${f(warm)}  n=${runs}\n`);
process.stdout.write(`nix store diff-closures   ${f(nix)}  n=${runs}\n`);
const verdict = (r: number) => (r <= 1 ? 'met' : 'MISSED');
process.stdout.write(
  `ratio hv / nix (goal: at most 1.00): warm ${warmRatio.toFixed(2)} ${verdict(warmRatio)}, cold ${ratio.toFixed(2)} ${verdict(ratio)}\n`,
);
process.exitCode = ratio <= 1 ? 0 : 1;
