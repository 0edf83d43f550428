/**
 * Ack latency of `/hv status` over Socket Mode: 50 commands sent at once (50 different users),
 * through the real @slack/bolt client, the Slack adapter and the real command bus (which runs
 * `status` in-process and posts each result into its thread), against the loopback Slack peer.
 *
 *   npm run build && node dist/test/bench/slack-ack.js [--concurrency 50] [--rounds 3]
 *
 * Prints p50/p95/p99/max of the time from the peer sending an envelope to receiving its ack, per
 * round and over all rounds; target p99 < 300 ms. Exits 1 when the target is missed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { channelTypes } from '../../adapters/registry.js';
import { SlackAdapter } from '../../adapters/slack/adapter.js';
import { SlackChannel } from '../../adapters/slack/schema.js';
import { commandRegistry } from '../../commands/index.js';
import { createCommandBus } from '../../src/bus/bus.js';
import { parseConfig } from '../../src/config/load.js';
import { ExecaRunner } from '../../src/proc.js';
import { createServices, readSecret } from '../../src/services.js';
import { SlackPeer } from '../peers/slack-peer.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function summary(label: string, xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (n: number) => `${n.toFixed(1)} ms`;
  return `${label.padEnd(10)} n=${s.length}  p50 ${f(pct(s, 50))}  p95 ${f(pct(s, 95))}  p99 ${f(pct(s, 99))}  max ${f(s.at(-1) ?? Number.NaN)}`;
}

async function main(): Promise<number> {
  const concurrency = arg('concurrency', 50);
  const rounds = arg('rounds', 3);
  const peer = await SlackPeer.start();
  const dir = mkdtempSync(join(tmpdir(), 'hv-bench-slack-'));
  const users = Array.from({ length: concurrency }, (_, i) => `U0B${String(i).padStart(4, '0')}`);
  writeFileSync(join(dir, 'bot'), 'xoxb-hv-test\n');
  writeFileSync(join(dir, 'app'), 'xapp-1-hv-test\n');
  const config = parseConfig(
    {
      host: 'hv01',
      allowNonRoot: true,
      paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
      flake: { dir: join(dir, 'flake') },
      notify: {
        channels: [
          {
            type: 'slack',
            name: 'slack',
            botTokenFile: join(dir, 'bot'),
            appTokenFile: join(dir, 'app'),
            channel: 'C0NOTIFY',
            apiUrl: peer.apiUrl,
          },
        ],
      },
      chatops: {
        roles: Object.fromEntries(users.map((u) => [`slack:${peer.workspace.teamId}:${u}`, 'viewer'])),
      },
    },
    channelTypes,
  );
  const services = createServices(config, { channels: channelTypes });
  const bus = createCommandBus(services, commandRegistry);
  const adapter = new SlackAdapter(SlackChannel.parse(config.notify.channels[0]), {
    config,
    runner: new ExecaRunner(),
    now: () => new Date(),
    readSecret,
    log: () => {},
  });
  await adapter.start({ bus });
  const all: number[] = [];
  let unacked = 0;
  try {
    // Warm-up: one command, so the first round does not measure module loading.
    await peer.sendSlashCommand({ user_id: users[0], text: 'status' });
    await bus.idle();
    for (let r = 1; r <= rounds; r++) {
      const acks = await Promise.all(users.map((u) => peer.sendSlashCommand({ user_id: u, text: 'status' })));
      unacked += acks.filter((a) => !a.acked).length;
      const lat = acks.map((a) => a.latencyMs);
      all.push(...lat);
      process.stdout.write(`${summary(`round ${r}`, lat)}\n`);
      const t0 = performance.now();
      await bus.idle();
      process.stdout.write(
        `           all ${concurrency} results posted ${(performance.now() - t0).toFixed(0)} ms after the last ack\n`,
      );
    }
  } finally {
    await adapter.stop();
    await bus.stop();
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${summary('all', all)}\n`);
  const p99 = pct(
    [...all].sort((a, b) => a - b),
    99,
  );
  const ok = p99 < 300 && unacked === 0;
  process.stdout.write(
    `target p99 < 300 ms: ${ok ? 'met' : 'MISSED'}${unacked ? ` (${unacked} not acked)` : ''}\n`,
  );
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  },
);
