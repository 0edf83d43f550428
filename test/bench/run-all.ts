/**
 * Every benchmark, one after another, each in its own process (they measure memory and latency, so
 * they must not share one): prints their figures and a line per benchmark; exits 1 if any missed
 * its goal.
 *
 *   npm run build && npm run bench
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const benches = ['startup', 'daemon-rss', 'slack-ack', 'discord-ack', 'slack-flood', 'closure-diff'];
const outcomes: string[] = [];
let failed = 0;
for (const name of benches) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`)], { stdio: 'inherit' });
  const ok = r.status === 0;
  if (!ok) failed++;
  outcomes.push(`${ok ? 'met   ' : 'MISSED'} ${name}`);
}
process.stdout.write(`\n${outcomes.join('\n')}\n`);
process.exitCode = failed ? 1 : 0;
