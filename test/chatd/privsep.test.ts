import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventType } from '../../src/events.js';
import {
  messageText,
  NOTIFY_CHANNEL,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from '../adapters/slack/harness.js';
import { auditRecords } from '../fixtures/chat.js';
import { freePort, processTree } from '../fixtures/processes.js';
import { type BackgroundHv, World } from '../fixtures/world.js';
import { DiscordPeer } from '../peers/discord-peer.js';
import { DISCORD_IDS } from '../peers/discord-types.js';
import { SlackPeer } from '../peers/slack-peer.js';

/**
 * Privilege separation (issue 13) on the shipped bundle: `hv daemon` (root here) runs the chat
 * process as `nobody`; the real bolt and discord.js clients talk to loopback peers from there.
 */
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let world: World | undefined;
let slack: SlackPeer | undefined;
let discord: DiscordPeer | undefined;

afterEach(async () => {
  world?.cleanup();
  await slack?.stop();
  await discord?.stop();
  world = slack = discord = undefined;
});

/** The descendants of `root` (not itself), with uid and command line. */
function descendants(root: number): { pid: number; uid: number; cmd: string }[] {
  return processTree(root)
    .filter((pid) => pid !== root)
    .flatMap((pid) => {
      try {
        const uid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
        return [{ pid, uid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ') }];
      } catch {
        return []; // gone
      }
    });
}

const chatProcessOf = (d: BackgroundHv) =>
  descendants(d.proc.pid as number).find((p) => p.cmd.includes('hv-chat'));

/** The pids holding TCP sockets (listening with -l) whose port is `port`, per `ss`. */
function tcpOwners(args: string[], match: (line: string) => boolean): number[] {
  const out = spawnSync('ss', ['-tnpH', ...args], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .filter(match)
    .flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

/** Run a small script as `uid`: its exit code and output. */
function runAs(uid: number, script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], {
      uid,
      gid: uid === NOBODY ? NOBODY : uid,
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: '/',
    });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('exit', (code) => resolve({ code, out }));
  });
}

async function chatWorld(opts: { http?: boolean; events?: EventType[] } = {}) {
  slack = await SlackPeer.start();
  discord = await DiscordPeer.start();
  const s = slack;
  const d = discord;
  world = new World({
    branches: ['nixos-24.05'],
    config: {
      randomizedDelaySec: 0,
      chatops: {
        roles: {
          [`slack:${s.workspace.teamId}:${s.workspace.userId}`]: 'admin',
          [`discord:role:${DISCORD_IDS.adminRole}`]: 'admin',
          'email:alice@example.org': 'admin',
        },
      },
    },
  });
  const w = world;
  writeFileSync(
    join(w.paths.state, 'last-check.json'),
    JSON.stringify({ at: new Date().toISOString(), ok: true }),
  );
  const secrets = join(w.root, 'secrets');
  spawnSync('mkdir', ['-m', '700', secrets]);
  const channels = w.config.notify as { channels: unknown[] };
  channels.channels.push(slackChannelConfig(s, secrets, { events: opts.events ?? ['test.passed'] }));
  if (opts.http)
    channels.channels.push(
      slackChannelConfig(s, secrets, {
        name: 'slack-http',
        mode: 'http',
        port: await freePort(),
        events: ['notify.test'],
      }),
    );
  const tokenFile = join(secrets, 'discord-token');
  writeFileSync(tokenFile, `${d.token}\n`, { mode: 0o600 });
  channels.channels.push({
    type: 'discord',
    tokenFile,
    applicationId: d.applicationId,
    guildId: DISCORD_IDS.guild,
    channelId: DISCORD_IDS.channel,
    apiUrl: d.apiUrl,
    events: ['notify.test'],
  });
  const smtpPassword = join(secrets, 'smtp-password');
  writeFileSync(smtpPassword, 'smtp-s3cr3t\n', { mode: 0o600 });
  channels.channels.push({
    type: 'email',
    name: 'ops-mail',
    from: 'hv@hv01.example.org',
    to: ['ops@example.org'],
    smtp: { host: '127.0.0.1', port: 9, user: 'hv', passwordFile: smtpPassword },
    events: ['notify.test'],
  });
  w.writeConfig();
  return { w, s, d, smtpPassword };
}

describe.skipIf(!isRoot)('privilege separation: the chat process', () => {
  it('the Slack and Discord connections belong to an unprivileged chat process that cannot read the SMTP password nor write the state dir; the engine listens on no network port', async () => {
    const { w, s, d, smtpPassword } = await chatWorld({ http: true });
    const daemon = w.startHv(['daemon']);
    try {
      await s.waitForSocket(1, { timeoutMs: 30_000 }).catch((e) => {
        throw new Error(`${e}\n${daemon.output()}`);
      });
      await until(() => d.gatewayConnections.length > 0, 'a Discord gateway connection', 30_000);
      const chat = chatProcessOf(daemon);
      expect(chat, daemon.output()).toBeDefined();
      expect(chat?.uid).toBe(NOBODY);
      // Every TCP connection hv has to the peers is the chat process's; the engine has none
      // to them and listens on no TCP port.
      const peerPorts = [s.apiUrl, d.apiUrl].map((u) => new URL(u).port);
      const owners = tcpOwners([], (l) => peerPorts.some((p) => l.includes(`:${p} `) || l.endsWith(`:${p}`)));
      const hvOwners = owners.filter((pid) => pid === daemon.proc.pid || pid === chat?.pid);
      expect(hvOwners.length).toBeGreaterThan(0);
      expect(new Set(hvOwners)).toEqual(new Set([chat?.pid]));
      // Slack's HTTP-mode listener (on loopback) is the chat process's; the engine listens on none.
      const listening = tcpOwners(['-l'], () => true);
      await until(
        () => tcpOwners(['-l'], (l) => l.includes('127.0.0.1:')).includes(chat?.pid as number),
        'the Slack HTTP listener',
        10_000,
      );
      expect(listening).not.toContain(daemon.proc.pid);
      // As the chat user: no reading the SMTP password, no writing the state dir.
      const probe = await runAs(
        NOBODY,
        `import fs from 'node:fs';
         let r = 'read-ok'; try { fs.readFileSync(${JSON.stringify(smtpPassword)}); } catch (e) { r = e.code; }
         let wr = 'write-ok'; try { fs.writeFileSync(${JSON.stringify(join(w.paths.state, 'x'))}, 'x'); } catch (e) { wr = e.code; }
         console.log(r, wr);`,
      );
      expect(probe.out.trim()).toBe('EACCES EACCES');
      expect(daemon.output()).not.toContain('smtp-s3cr3t');
      expect(daemon.output()).not.toContain(d.token);
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
    }
  }, 120_000);

  it('the engine socket refuses other users (file mode and peer uid) and refuses, audits, requests outside a command schema', async () => {
    const { w, s } = await chatWorld();
    const daemon = w.startHv(['daemon']);
    try {
      await s.waitForSocket(1, { timeoutMs: 30_000 });
      const socket = join(w.root, 'run', 'hv', 'chat.sock');
      const connect = (extra: string) => `import net from 'node:net';
        const c = net.connect(${JSON.stringify(socket)});
        c.on('error', (e) => { console.log('error', e.code); process.exit(0); });
        c.on('close', () => { console.log('closed'); process.exit(0); });
        let buf = '';
        c.on('data', (d) => { buf += d; for (;;) { const i = buf.indexOf('\\n'); if (i < 0) break; const m = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1); console.log('msg', m.t, JSON.stringify(m.outcome ?? m.do ?? '')); if (m.t === 'reply') c.write(JSON.stringify({ t: 'reply-done', call: m.call, ok: true }) + '\\n'); } });
        c.on('connect', () => { c.write(JSON.stringify({ t: 'hello', v: 1, pid: process.pid }) + '\\n'); ${extra} });
        setTimeout(() => process.exit(0), 4000);`;
      // Another unprivileged user (uid 1, "daemon" on Debian) cannot even open the socket.
      const other = await runAs(1, connect(''));
      expect(other.out).toContain('error EACCES');
      // Root passes the file mode but not the peer check: closed before any welcome, audited.
      const root = await runAs(0, connect(''));
      expect(root.out).toContain('closed');
      expect(root.out).not.toContain('msg welcome');
      await until(
        () => auditRecords(w.paths.audit).some((a) => a.operation === 'connect' && a.actor.id === 'uid:0'),
        'the refused connection in the audit log',
        5000,
      );
      // The chat user itself is let in; argv outside the command's schema is refused by the engine.
      const admin = { channel: 'slack', id: `${s.workspace.teamId}:${s.workspace.userId}` };
      const submit = (id: string, command: string, argv: string[]) =>
        `c.write(JSON.stringify({ t: 'submit', call: ${id.length}, replyId: 'r-${id}', request: { id: '${id}', command: '${command}', argv: ${JSON.stringify(argv)}, actor: ${JSON.stringify(admin)}, replyTo: { channel: 'slack', data: {} } } }) + '\\n');`;
      const chat = await runAs(
        NOBODY,
        connect(
          [
            submit('x1', 'status', ['--config', '/tmp/evil.json']),
            submit('x22', 'no-such-command', []),
            submit('x333', 'upgrade-test', ['--no-such-flag']),
            // An admin's email identity claimed through the Slack channel: not the chat process's call.
            submit('x4444', 'status', []).replace(
              JSON.stringify(admin),
              JSON.stringify({ channel: 'email', id: 'alice@example.org' }),
            ),
          ].join(' '),
        ),
      );
      expect(chat.out).toContain('msg welcome');
      expect(chat.out.match(/"kind":"refused"/g)?.length, chat.out).toBe(4);
      const denied = auditRecords(w.paths.audit).filter(
        (a) => a.result === 'denied' && /^x\d+$/.test(a.requestId ?? ''),
      );
      expect(denied.map((a) => a.requestId).sort()).toEqual(['x1', 'x22', 'x333', 'x4444']);
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
    }
  }, 120_000);

  it('SIGKILL of the chat process during an operation from chat: the operation completes, the chat process is back within seconds, the result reaches the thread, the notification arrives once', async () => {
    const { w, s } = await chatWorld({ events: ['test.passed', 'test.failed'] });
    const daemon = w.startHv(['daemon']);
    try {
      await s.waitForSocket(1, { timeoutMs: 30_000 });
      w.upstream.advance('nixos-24.05', { sleepSec: 4 });
      const sent = sendSlash(s, { id: s.workspace.userId }, 'upgrade-test');
      expect((await sent.ack).acked).toBe(true);
      const thread = () => threadsSince(s, s.workspace.channelId, sent.sentAt);
      await until(() => thread()[0]?.some((m) => /build/i.test(messageText(m))), 'build progress', 60_000);
      const first = chatProcessOf(daemon);
      expect(first).toBeDefined();
      process.kill(first?.pid as number, 'SIGKILL');
      const killedAt = Date.now();
      await until(
        () => {
          const again = chatProcessOf(daemon);
          return again && again.pid !== first?.pid ? again : undefined;
        },
        'a new chat process',
        10_000,
      );
      await s.waitForSocket(2, { timeoutMs: 15_000 });
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      await until(
        () => thread()[0]?.some((m) => /Upgrade Test: (PASSED|FAILED)/.test(messageText(m))),
        'the result after the chat process came back',
        120_000,
      );
      expect(thread()[0]?.map(messageText).join('\n')).toContain('Upgrade Test: PASSED');
      await until(
        () => s.messages.filter((m) => m.channel === NOTIFY_CHANNEL).length > 0,
        'the test.passed notification',
        90_000,
      ).catch((e) => {
        const outbox = join(w.paths.state, 'notify', 'outbox');
        const files = readdirSync(outbox).map(
          (f) => `${f}: ${readFileSync(join(outbox, f), 'utf8').slice(0, 600)}`,
        );
        throw new Error(`${e}\n${daemon.output()}\n--- outbox:\n${files.join('\n')}`);
      });
      await new Promise((r) => setTimeout(r, 3000));
      expect(s.messages.filter((m) => m.channel === NOTIFY_CHANNEL)).toHaveLength(1);
      expect(daemon.proc.exitCode).toBe(null);
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
    }
  }, 300_000);
});
