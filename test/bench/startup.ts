/**
 * Benchmark: cold start of `hv status --json` against `node -e 0` on the same machine (issue 2:
 * median no more than 1.5x). Prints the figures; exits 1 when over the goal.
 * Run: npm run build && node dist/test/bench/startup.js [runs]
 */
import { spawnSync } from 'node:child_process';
import { hvBin } from '../fixtures/world.js';
import { benchConfig } from './util.js';

const runs = Number(process.argv[2] ?? 30);
const { config } = benchConfig('hv-bench-');

function time(argv: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

const node: number[] = [];
const hv: number[] = [];
time(['-e', '0']);
time([hvBin, 'status', '--json', '--config', config]);
for (let i = 0; i < runs; i++) {
  // interleave so that machine noise hits both alike
  node.push(time(['-e', '0']));
  hv.push(time([hvBin, 'status', '--json', '--config', config]));
}
const ratio = median(hv) / median(node);

/** Instructions executed (valgrind callgrind): deterministic, unlike wall time on a busy machine. */
function instructions(argv: string[]): number | undefined {
  const r = spawnSync(
    'valgrind',
    ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, ...argv],
    {
      encoding: 'utf8',
    },
  );
  const m = /refs:\s+([\d,]+)/.exec(r.stderr ?? '');
  return m ? Number((m[1] as string).replace(/,/g, '')) : undefined;
}
const nodeIns = instructions(['-e', '0']);
const hvIns =
  nodeIns === undefined ? undefined : instructions([hvBin, 'status', '--json', '--config', config]);
if (nodeIns !== undefined && hvIns !== undefined)
  console.log(
    `instructions (callgrind): node -e 0 ${(nodeIns / 1e6).toFixed(0)} M, hv status --json ${(hvIns / 1e6).toFixed(0)} M, ratio ${(hvIns / nodeIns).toFixed(2)}x`,
  );
else console.log('instructions: valgrind not installed (apt-get install valgrind) — wall time only');
console.log(`node -e 0:        median ${median(node).toFixed(1)} ms over ${runs} runs`);
console.log(`hv status --json: median ${median(hv).toFixed(1)} ms over ${runs} runs`);
console.log(`ratio: ${ratio.toFixed(2)}x (goal <= 1.5x) ${ratio <= 1.5 ? 'OK' : 'OVER'}`);
process.exitCode = ratio <= 1.5 ? 0 : 1;
