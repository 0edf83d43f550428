/**
 * Benchmark: resident memory of an idle `hv daemon` with only local channels (issue 5: target under
 * 80 MB). Starts the daemon on a sandbox state dir, lets it settle (its catch-up check runs and
 * fails fast: there is no flake), samples VmRSS for a while, prints the figures, stops it.
 * Run: npm run build && node dist/test/bench/daemon-rss.js [seconds]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hvBin } from '../fixtures/world.js';

const seconds = Number(process.argv[2] ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'hv-rss-'));
const config = join(dir, 'config.json');
writeFileSync(
  config,
  JSON.stringify({
    allowNonRoot: true,
    host: 'bench',
    schedule: 'monthly',
    randomizedDelaySec: 0,
    flake: { dir: join(dir, 'flake') },
    paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
    notify: { channels: [{ type: 'motd' }, { type: 'wall', command: ['true'] }] },
  }),
);
const child = spawn(process.execPath, [hvBin, 'daemon', '--config', config], { stdio: 'ignore' });
const rss = (): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const samples: number[] = [];
await new Promise((r) => setTimeout(r, 5000));
for (let i = 0; i < seconds; i++) {
  samples.push(rss());
  await new Promise((r) => setTimeout(r, 1000));
}
child.kill('SIGTERM');
const max = Math.max(...samples);
const last = samples[samples.length - 1] ?? Number.NaN;
console.log(
  `idle hv daemon (motd + wall): RSS ${last.toFixed(1)} MB now, max ${max.toFixed(1)} MB over ${seconds} s`,
);
console.log(`goal < 80 MB: ${max < 80 ? 'OK' : 'OVER'}`);
process.exitCode = max < 80 ? 0 : 1;
