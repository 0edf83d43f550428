// Bundles the CLI entry points into dist/bundle/ (one file per entry plus shared chunks) so that
// `hv status` starts fast: one module graph to parse instead of dozens of files. Platform
// libraries stay external and load lazily from node_modules only when a channel needs them.
// Built beside and swapped in by rename, so a CLI running meanwhile never sees a half-built tree.
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

// One entry (hv.mjs holds everything loaded at start; dynamic imports become chunks). The alias
// bins put their command in front of the arguments and load hv.mjs.
const aliases = ['check-updates', 'upgrade-test', 'system-upgrade'];
const out = `dist/bundle.${process.pid}`;
await build({
  // hv-chat.mjs: the unprivileged chat process (src/chatd/chat-main.ts), started by `hv daemon` or
  // by the NixOS module's hv-chat.service; it is not on PATH.
  entryPoints: { hv: 'src/cli/hv.ts', 'hv-chat': 'src/chatd/chat-main.ts' },
  outdir: out,
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
    'imapflow',
    'execa',
    'smtp-server',
    'mailparser',
    'ws',
  ],
  logLevel: 'warning',
});
for (const alias of aliases) {
  writeFileSync(
    `${out}/${alias}.mjs`,
    `#!/usr/bin/env node\n// hv-${alias}: the same as \`hv ${alias}\`.\nprocess.argv.splice(2, 0, '${alias}');\nawait import('./hv.mjs');\n`,
  );
}
for (const bin of ['hv', 'hv-chat', ...aliases]) chmodSync(`${out}/${bin}.mjs`, 0o755);
const old = `dist/bundle.old.${process.pid}`;
try {
  renameSync('dist/bundle', old);
} catch {
  // first build
}
renameSync(out, 'dist/bundle');
rmSync(old, { recursive: true, force: true });
