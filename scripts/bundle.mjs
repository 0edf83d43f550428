// Bundles the CLI entry points into dist/bundle/ (one file per entry plus shared chunks) so that
// `hv status` starts fast: one module graph to parse instead of dozens of files. Platform
// libraries stay external and load lazily from node_modules only when a channel needs them.
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const entries = ['hv', 'check-updates', 'upgrade-test', 'system-upgrade'];
rmSync('dist/bundle', { recursive: true, force: true });
await build({
  entryPoints: Object.fromEntries(entries.map((e) => [e, `src/cli/${e}.ts`])),
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  sourcemap: false,
  outExtension: { '.js': '.mjs' },
  external: [
    '@slack/bolt',
    'discord.js',
    'nodemailer',
    'execa',
    'node-cron',
    'smtp-server',
    'mailparser',
    'ws',
  ],
  logLevel: 'warning',
});
for (const f of readdirSync('dist/bundle'))
  if (entries.some((e) => f === `${e}.mjs`)) chmodSync(`dist/bundle/${f}`, 0o755);
