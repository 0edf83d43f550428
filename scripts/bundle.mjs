// Bundles the CLI entry points into dist/bundle/ (one file per entry plus shared chunks) so that
// `hv status` starts fast: one module graph to parse instead of dozens of files. Platform
// libraries stay external and load lazily from node_modules only when a channel needs them.
// Built beside and swapped in by rename, so a CLI running meanwhile never sees a half-built tree.
import { chmodSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const entries = ['hv', 'check-updates', 'upgrade-test', 'system-upgrade'];
const out = `dist/bundle.${process.pid}`;
await build({
  entryPoints: Object.fromEntries(entries.map((e) => [e, `src/cli/${e}.ts`])),
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  sourcemap: false,
  outExtension: { '.js': '.mjs' },
  external: ['@slack/bolt', 'discord.js', 'nodemailer', 'execa', 'smtp-server', 'mailparser', 'ws'],
  logLevel: 'warning',
});
for (const f of readdirSync(out)) if (entries.some((e) => f === `${e}.mjs`)) chmodSync(`${out}/${f}`, 0o755);
const old = `dist/bundle.old.${process.pid}`;
try {
  renameSync('dist/bundle', old);
} catch {
  // first build
}
renameSync(out, 'dist/bundle');
rmSync(old, { recursive: true, force: true });
