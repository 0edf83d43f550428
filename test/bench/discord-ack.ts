/**
 * Ack latency of `/hv status` from Discord: 50 interactions at once (50 different members) to the
 * built `hv daemon` (its Discord adapter on the real discord.js gateway client, the real command
 * bus, which runs `status` and edits each deferred reply with the result), from the loopback
 * Discord peer in this process, as Discord would reach a host. The latency is from the peer dispatching INTERACTION_CREATE to receiving the interaction
 * callback (the deferral Discord requires within 3 s).
 *
 *   npm run build && node dist/test/bench/discord-ack.js [--concurrency 50] [--rounds 3]
 *
 * Prints p50/p95/p99/max per round and over all rounds; target p99 < 300 ms. Exits 1 when missed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DISCORD_IDS, type DiscordMemberSeed, DiscordPeer } from '../peers/discord-peer.js';
import { waitFor } from '../peers/http-util.js';
import { numArg, p99, startDaemon, summary } from './util.js';

async function main(): Promise<number> {
  const concurrency = numArg('concurrency', 50);
  const rounds = numArg('rounds', 3);
  const members: DiscordMemberSeed[] = Array.from({ length: concurrency }, (_, i) => ({
    user: { id: `13000000000000${String(i).padStart(5, '0')}`, username: `viewer${i}` },
    roles: [DISCORD_IDS.adminRole],
  }));
  // A copy: the peer adds its bot user to the list it is given.
  const peer = await DiscordPeer.start({ guild: { members: [...members] } });
  const dir = mkdtempSync(join(tmpdir(), 'hv-bench-discord-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${peer.token}\n`, { mode: 0o600 });
  const daemon = startDaemon(dir, {
    notify: {
      channels: [
        {
          type: 'discord',
          name: 'discord',
          tokenFile,
          applicationId: peer.applicationId,
          guildId: DISCORD_IDS.guild,
          channelId: DISCORD_IDS.channel,
          apiUrl: peer.apiUrl,
        },
      ],
    },
    // Each member is a distinct actor (rate limits are per actor); the role makes them viewers.
    chatops: {
      roles: { [`discord:role:${DISCORD_IDS.adminRole}`]: 'viewer' },
    },
  });
  /** Results shown: each edits its interaction's deferred reply. */
  const results = () =>
    peer.restCalls.filter((c) => c.method === 'PATCH' && c.path.endsWith('/messages/@original')).length;
  const send = async (m: DiscordMemberSeed) => {
    const sent = peer.sendInteraction({
      type: 2,
      data: { name: 'hv', options: [{ type: 1, name: 'status', options: [] }] },
      member: { user: m.user, roles: m.roles ?? [] },
    });
    try {
      return await peer.waitForCallback(sent.id, { timeoutMs: 3_000 });
    } catch {
      return undefined;
    }
  };
  const all: number[] = [];
  let unacked = 0;
  try {
    await peer.waitForSession({}, { timeoutMs: 30_000 });
    await send(members[0] as DiscordMemberSeed);
    await waitFor(() => results() >= 1, { what: 'the warm-up result', timeoutMs: 30_000 });
    for (let r = 1; r <= rounds; r++) {
      const before = results();
      const cbs = await Promise.all(members.map(send));
      unacked += cbs.filter((c) => !c).length;
      const lat = cbs.flatMap((c) => (c ? [c.latencyMs] : []));
      all.push(...lat);
      process.stdout.write(`${summary(`discord round ${r}`, lat)}\n`);
      const t0 = performance.now();
      await waitFor(() => results() >= before + concurrency, { what: 'the results', timeoutMs: 60_000 });
      process.stdout.write(
        `               all ${concurrency} results shown ${(performance.now() - t0).toFixed(0)} ms after the last ack\n`,
      );
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- hv daemon:\n${daemon.output()}`);
  } finally {
    await daemon.stop();
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${summary('discord', all)}\n`);
  const ok = p99(all) < 300 && unacked === 0;
  process.stdout.write(
    `discord: ${concurrency} concurrent /hv status, target p99 < 300 ms: ${ok ? 'met' : 'MISSED'}${unacked ? ` (${unacked} not acked)` : ''}\n`,
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
