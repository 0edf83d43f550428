/**
 * Ack latency of `/hv status` from Slack: 50 commands sent at once (50 different users) to the
 * built `hv daemon` (its Slack adapter on the real @slack/bolt, the real command bus, which runs
 * `status` and posts each result into its thread), from the loopback Slack peer in this process,
 * as Slack would reach a host. Both modes:
 * Socket Mode (envelope sent → ack frame) and HTTP mode (signed POST to hv's receiver → HTTP 200;
 * the bus verifies each signature before bolt sees the request).
 *
 *   npm run build && node dist/test/bench/slack-ack.js [--concurrency 50] [--rounds 3] [--mode socket|http|both]
 *
 * Prints p50/p95/p99/max per round and over all rounds, per mode; target p99 < 300 ms. Exits 1
 * when the target is missed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../peers/http-util.js';
import { postSlashCommand, SlackPeer } from '../peers/slack-peer.js';
import { freePort, numArg, p99, startDaemon, strArg, summary, waitListening } from './util.js';

const SECRET = 'hv-bench-signing-secret';

type Mode = 'socket' | 'http';

/** One mode's run: the latencies of every round, and how many were not acknowledged. */
async function run(
  mode: Mode,
  concurrency: number,
  rounds: number,
): Promise<{ all: number[]; unacked: number }> {
  const peer = await SlackPeer.start();
  const dir = mkdtempSync(join(tmpdir(), 'hv-bench-slack-'));
  const users = Array.from({ length: concurrency }, (_, i) => `U0B${String(i).padStart(4, '0')}`);
  writeFileSync(join(dir, 'bot'), 'xoxb-hv-test\n', { mode: 0o600 });
  writeFileSync(join(dir, 'app'), 'xapp-1-hv-test\n', { mode: 0o600 });
  writeFileSync(join(dir, 'signing'), `${SECRET}\n`, { mode: 0o600 });
  const port = await freePort();
  const daemon = startDaemon(dir, {
    notify: {
      channels: [
        {
          type: 'slack',
          name: 'slack',
          mode,
          port,
          botTokenFile: join(dir, 'bot'),
          ...(mode === 'socket'
            ? { appTokenFile: join(dir, 'app') }
            : { signingSecretFile: join(dir, 'signing') }),
          channel: 'C0NOTIFY',
          apiUrl: peer.apiUrl,
        },
      ],
    },
    chatops: {
      roles: Object.fromEntries(users.map((u) => [`slack:${peer.workspace.teamId}:${u}`, 'viewer'])),
    },
  });
  const url = `http://127.0.0.1:${port}/slack/events`;
  const send = async (user: string): Promise<{ acked: boolean; latencyMs: number }> => {
    if (mode === 'socket') return peer.sendSlashCommand({ user_id: user, text: 'status' });
    const r = await postSlashCommand(url, SECRET, { user_id: user, text: 'status' });
    return { acked: r.status === 200, latencyMs: r.latencyMs };
  };
  /** Every result of the last round is in its thread (the daemon is idle again). */
  const results = () =>
    peer.messages.filter((m) => m.threadTs && /status: [A-Z-]+/.test(m.text ?? '')).length;
  const all: number[] = [];
  let unacked = 0;
  try {
    if (mode === 'socket') await peer.waitForSocket(1, { timeoutMs: 30_000 });
    else await waitListening(port, daemon);
    // Warm-up: one command, so the first round does not measure module loading.
    await send(users[0] as string);
    await waitFor(() => results() >= 1, { what: 'the warm-up result', timeoutMs: 30_000 });
    for (let r = 1; r <= rounds; r++) {
      const before = results();
      const acks = await Promise.all(users.map(send));
      unacked += acks.filter((a) => !a.acked).length;
      const lat = acks.map((a) => a.latencyMs);
      all.push(...lat);
      process.stdout.write(`${summary(`${mode} round ${r}`, lat)}\n`);
      const t0 = performance.now();
      await waitFor(() => results() >= before + concurrency, { what: 'the results', timeoutMs: 60_000 });
      process.stdout.write(
        `               all ${concurrency} results posted ${(performance.now() - t0).toFixed(0)} ms after the last ack\n`,
      );
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- hv daemon:\n${daemon.output()}`);
  } finally {
    await daemon.stop();
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { all, unacked };
}

async function main(): Promise<number> {
  const concurrency = numArg('concurrency', 50);
  const rounds = numArg('rounds', 3);
  const which = strArg('mode', 'both');
  const modes: Mode[] = which === 'both' ? ['socket', 'http'] : [which as Mode];
  let ok = true;
  for (const mode of modes) {
    const { all, unacked } = await run(mode, concurrency, rounds);
    process.stdout.write(`${summary(`slack ${mode}`, all)}\n`);
    const met = p99(all) < 300 && unacked === 0;
    process.stdout.write(
      `slack ${mode}: ${concurrency} concurrent /hv status, target p99 < 300 ms: ${met ? 'met' : 'MISSED'}${unacked ? ` (${unacked} not acked)` : ''}\n`,
    );
    ok &&= met;
  }
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
