/**
 * Email commands end to end through the real daemon (issue 14, acceptance 6 and 7): `hv daemon`
 * (root here) runs the email intake in its chat process as `nobody`; command mail comes from a
 * private dovecot (IMAP) or from `hv email-intake` on stdin, is DKIM-signed by python3-dkim with keys
 * a loopback DNS server publishes, and the threaded reply reaches a loopback SMTP sink.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DkimDomain, message } from '../adapters/email/dkim-signer.js';
import { DnsServer } from '../adapters/email/dns-server.js';
import { until } from '../adapters/slack/harness.js';
import { auditRecords } from '../fixtures/chat.js';
import { Dovecot, dovecotBinary } from '../fixtures/dovecot.js';
import { type BackgroundHv, hvBin, World } from '../fixtures/world.js';
import { MailSink, type Received } from '../notify/smtp.js';

const isRoot = process.getuid?.() === 0;
const HV_ADDRESS = 'hv@hv01.example.org';
const IMAP_PASSWORD = 'imap-pw-5d1f0b';
const SMTP_PASSWORD = 'smtp-pw-93ac2e';

let dns: DnsServer;
let keys: string;
let org: DkimDomain;
let sink: MailSink;
let imap: Dovecot | undefined;
let world: World | undefined;
const daemons: BackgroundHv[] = [];

beforeAll(async () => {
  if (!isRoot) return;
  dns = await DnsServer.start();
  keys = mkdtempSync(join(tmpdir(), 'hv-dkim-'));
  org = new DkimDomain('example.org', keys, dns);
});
afterAll(async () => {
  if (!isRoot) return;
  await dns.close();
  rmSync(keys, { recursive: true, force: true });
});
beforeEach(async () => {
  if (isRoot) sink = await MailSink.start();
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await stop(d);
  world?.cleanup();
  await imap?.stop();
  await sink?.close();
  world = imap = undefined;
});

/** A World whose email channel has the intake (and IMAP when given) and replies to the sink. */
function mailWorld(opts: { imap?: Dovecot } = {}) {
  const w = new World({
    branches: ['nixos-24.05'],
    config: { randomizedDelaySec: 0, chatops: { roles: { 'email:alice@example.org': 'admin' } } },
  });
  world = w;
  writeFileSync(
    join(w.paths.state, 'last-check.json'),
    JSON.stringify({ at: new Date().toISOString(), ok: true }),
  );
  // Root's secrets, which the chat process (nobody) cannot read: the engine hands them over.
  const secrets = join(w.root, 'secrets');
  spawnSync('mkdir', ['-m', '700', secrets]);
  const smtpPasswordFile = join(secrets, 'smtp-password');
  writeFileSync(smtpPasswordFile, `${SMTP_PASSWORD}\n`, { mode: 0o600 });
  const imapPasswordFile = join(secrets, 'imap-password');
  writeFileSync(imapPasswordFile, `${IMAP_PASSWORD}\n`, { mode: 0o600 });
  const channels = w.config.notify as { channels: unknown[] };
  channels.channels.push({
    type: 'email',
    name: 'mail',
    from: HV_ADDRESS,
    to: ['ops@example.org'],
    smtp: { host: '127.0.0.1', port: sink.port, secure: false, user: 'hv', passwordFile: smtpPasswordFile },
    events: ['notify.test'],
    intake: {
      address: HV_ADDRESS,
      dnsServers: [dns.address],
      ...(opts.imap
        ? {
            imap: {
              host: '127.0.0.1',
              port: opts.imap.port,
              secure: false,
              user: opts.imap.user,
              passwordFile: imapPasswordFile,
              pollSec: 2,
            },
          }
        : {}),
    },
  });
  w.writeConfig();
  return w;
}

function start(w: World): BackgroundHv {
  const d = w.startHv(['daemon']);
  daemons.push(d);
  return d;
}

async function stop(d: BackgroundHv): Promise<number | null> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGTERM');
  return d.exited;
}

const signed = (subject: string, messageId: string) =>
  org.sign(message({ from: 'Alice <alice@example.org>', subject, messageId }));

const repliesTo = (messageId: string): Received[] => sink.mails.filter((m) => m.mail.inReplyTo === messageId);

async function replyTo(messageId: string, d: BackgroundHv, ms = 60_000): Promise<Received> {
  return until(() => repliesTo(messageId)[0], `a reply to ${messageId}`, ms).catch((e) => {
    throw new Error(`${e}\n--- daemon output ---\n${d.output()}\n--- imap log ---\n${imap?.log() ?? ''}`);
  });
}

/** `hv email-intake` with the message on stdin, as the MTA's pipe transport runs it. */
function emailIntake(w: World, input: Buffer | string, as?: 'nobody') {
  const argv = [process.execPath, hvBin, 'email-intake', '--config', w.configPath];
  const [cmd, ...args] = as
    ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', ...argv]
    : argv;
  const r = spawnSync(cmd as string, args, {
    input,
    encoding: 'utf8',
    timeout: 60_000,
    cwd: '/',
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!isRoot || !dovecotBinary())(
  'email commands through hv daemon (chat process as nobody)',
  () => {
    it('IMAP: a signed "hv status" gets one threaded reply and lands in hv-processed; after a daemon restart it is not answered again, and new mail is', async () => {
      imap = await Dovecot.start({ password: IMAP_PASSWORD });
      const w = mailWorld({ imap });
      let d = start(w);
      const first = '<imap-1@client.example>';
      await imap.append(signed('hv status', first));
      const reply = await replyTo(first, d);
      expect(reply.mail.subject).toMatch(/^Re: hv status/);
      expect(reply.mail.from?.value[0]?.address).toBe(HV_ADDRESS);
      expect(reply.mail.to && 'value' in reply.mail.to ? reply.mail.to.value[0]?.address : undefined).toBe(
        'alice@example.org',
      );
      expect(String(reply.mail.references)).toContain(first);
      expect(reply.mail.text).toContain('Host:');
      // The SMTP password reached the chat process through the engine (it cannot read the file).
      expect(reply).toMatchObject({ user: 'hv', password: SMTP_PASSWORD });
      const im = imap;
      await untilAsync(
        async () => (await im.list('hv-processed')).some((m) => m.messageId === first),
        'hv-processed',
      );
      expect((await imap.list('INBOX')).map((m) => m.messageId)).not.toContain(first);
      const audit = auditRecords(w.paths.audit).filter((a) => a.actor.id === 'alice@example.org');
      expect(audit.map((a) => [a.actor.channel, a.operation, a.result])).toEqual([
        ['email', 'status', 'allowed'],
      ]);

      expect(await stop(d)).toBe(0);
      d = start(w);
      // The first mail delivered again (an MTA retry, same Message-ID) after the restart, then a new one.
      await imap.append(signed('hv status', first));
      const second = '<imap-2@client.example>';
      await imap.append(signed('hv status', second));
      await replyTo(second, d);
      await untilAsync(async () => (await im.list('INBOX')).length === 0, 'an empty INBOX');
      await new Promise((r) => setTimeout(r, 2000));
      expect(repliesTo(first)).toHaveLength(1);
      expect(repliesTo(second)).toHaveLength(1);
      expect(sink.mails).toHaveLength(2);
      expect((await imap.list('hv-processed')).map((m) => m.messageId).sort()).toEqual(
        [first, first, second].sort(),
      );
      expect(
        auditRecords(w.paths.audit).filter(
          (a) => a.actor.id === 'alice@example.org' && a.result === 'allowed',
        ),
      ).toHaveLength(2);
      expect(d.output()).not.toContain(IMAP_PASSWORD);
      expect(d.output()).not.toContain(SMTP_PASSWORD);
    }, 240_000);

    it('IMAP: an unsigned mail gets no reply at all; the audit names the reason', async () => {
      imap = await Dovecot.start({ password: IMAP_PASSWORD });
      const w = mailWorld({ imap });
      const d = start(w);
      const forged = '<forged@client.example>';
      await imap.append(
        message({ from: 'Alice <alice@example.org>', subject: 'hv status', messageId: forged }),
      );
      const refused = await until(
        () => auditRecords(w.paths.audit).find((a) => a.result === 'denied' && a.actor.channel === 'email'),
        'the refusal in the audit log',
        60_000,
      ).catch((e) => {
        throw new Error(`${e}\n${d.output()}`);
      });
      expect(String(refused.details?.reason)).toMatch(/no DKIM signature/);
      const im = imap;
      await untilAsync(
        async () => (await im.list('hv-processed')).some((m) => m.messageId === forged),
        'hv-processed',
      );
      await new Promise((r) => setTimeout(r, 2000));
      expect(sink.mails).toEqual([]);
      expect(sink.connections).toBe(0);
    }, 120_000);

    it('pipe: garbage on stdin exits 65; with the daemon stopped a signed mail piped by root is queued (exit 0) and answered once the daemon starts; with it running, mail piped as root or as the chat user is answered', async () => {
      const w = mailWorld();
      const garbage = emailIntake(w, 'hello world\n');
      expect(garbage.code).toBe(65);
      expect(garbage.out).toContain('not a mail message');
      const id = '<piped@client.example>';
      const queued = emailIntake(w, signed('hv status', id));
      expect(queued.code, queued.out).toBe(0);
      await new Promise((r) => setTimeout(r, 1000));
      expect(sink.mails).toEqual([]);
      const d = start(w);
      const reply = await replyTo(id, d);
      expect(reply.mail.subject).toMatch(/^Re: hv status/);
      for (const [n, as] of [
        ['root', undefined],
        ['nobody', 'nobody'],
      ] as const) {
        const next = `<piped-${n}@client.example>`;
        const r = emailIntake(w, signed('hv status', next), as);
        expect(r.code, r.out).toBe(0);
        await replyTo(next, d);
      }
      await new Promise((r) => setTimeout(r, 2000));
      expect(repliesTo(id)).toHaveLength(1);
      expect(sink.mails).toHaveLength(3);
      expect(d.output()).not.toMatch(/cannot be read|EACCES/);
    }, 120_000);
  },
);

async function untilAsync(probe: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
