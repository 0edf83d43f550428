/**
 * The IMAP mail source against a real IMAP server (Debian's dovecot, started privately per test by
 * test/fixtures/dovecot.ts): each command mail is handed over once, also across a restart; new
 * mail is noticed through IDLE within seconds, and by polling on a server without IDLE; a wrong
 * password is logged (without the password) and retried, never a crash.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { imapSource, PROCESSED_KEYWORD } from '../adapters/email/intake/imap.js';
import { ImapSettings } from '../adapters/email/intake/imap-schema.js';
import type { IncomingMail, MailSource } from '../adapters/email/intake/source.js';
import { readSecret } from '../src/services.js';
import { Dovecot } from './fixtures/dovecot.js';

const PASSWORD = 'pw-7c1e9f-imap-secret';

interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

function mail(n: string, subject = `hv status ${n}`): string {
  return [
    'From: Alice <alice@example.org>',
    'To: hv@hv01.example.org',
    `Subject: ${subject}`,
    `Message-ID: <${n}@example.org>`,
    'Date: Thu, 28 Nov 2024 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Body of message ${n}.`,
    '',
  ].join('\r\n');
}

const messageIdOf = (raw: Buffer) => /^Message-ID: (<[^>]+>)/im.exec(raw.toString('latin1'))?.[1];

async function until<T>(probe: () => T | undefined | false, what: string, ms = 8_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A dovecot, a password file, and a way to make sources reading its INBOX. */
async function world(opts: { capabilities?: string[]; password?: string } = {}) {
  const server = await Dovecot.start({ password: PASSWORD, capabilities: opts.capabilities });
  cleanups.push(() => server.stop());
  const dir = mkdtempSync(join(tmpdir(), 'hv-imap-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const passwordFile = join(dir, 'imap-password');
  writeFileSync(passwordFile, `${opts.password ?? PASSWORD}\n`, { mode: 0o600 });
  const logs: LogLine[] = [];
  const settings = (extra: Record<string, unknown> = {}) =>
    ImapSettings.parse({
      host: server.host,
      port: server.port,
      secure: false,
      user: server.user,
      passwordFile,
      ...extra,
    });
  const source = (extra: Record<string, unknown> = {}): MailSource => {
    const src = imapSource(
      settings(extra),
      {
        readSecret,
        log: (level, msg, fields) => logs.push({ level, msg, fields }),
        stateDir: join(dir, 'state'),
      },
      { minBackoffMs: 200, maxBackoffMs: 800 },
    );
    cleanups.push(() => src.stop());
    return src;
  };
  const connected = (n: number) =>
    until(() => logs.filter((l) => l.msg === 'imap intake connected').length >= n, `connection #${n}`);
  return { server, passwordFile, logs, source, connected };
}

/** An onMail that records each message and marks it done. */
function recorder() {
  const seen: IncomingMail[] = [];
  const onMail = async (m: IncomingMail) => {
    await m.done();
    seen.push(m);
  };
  return { seen, onMail, ids: () => seen.map((m) => messageIdOf(m.raw)) };
}

describe('imap settings', () => {
  it('defaults: IMAPS on 993, INBOX into hv-processed, a check a minute', () => {
    const s = ImapSettings.parse({ host: 'imap.example.org', user: 'hv', passwordFile: '/run/keys/imap' });
    expect(s).toMatchObject({
      port: 993,
      secure: true,
      mailbox: 'INBOX',
      processedMailbox: 'hv-processed',
      pollSec: 60,
    });
  });

  it('refuses a relative password file, and a processed mailbox equal to the mailbox', () => {
    const bad = ImapSettings.safeParse({
      host: 'imap.example.org',
      user: 'hv',
      passwordFile: 'imap-password',
      mailbox: 'hv',
      processedMailbox: 'hv',
      extra: 1,
    });
    expect(bad.success).toBe(false);
    const paths = bad.error?.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['passwordFile', '']));
    const relaxed = ImapSettings.safeParse({
      host: 'imap.example.org',
      user: 'hv',
      passwordFile: '/run/keys/imap',
      mailbox: 'hv',
      processedMailbox: 'hv',
    });
    expect(relaxed.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['processedMailbox', 'must differ from "mailbox" (processed mail is moved there)'],
    ]);
  });
});

describe('imap mail source (real dovecot)', () => {
  it('a message in INBOX is handed over once, whole, and ends in hv-processed flagged', async () => {
    const w = await world();
    await w.server.append(mail('m1'));
    const r = recorder();
    await w.source({ pollSec: 3600 }).start(r.onMail);
    await until(() => r.seen.length === 1, 'the message');
    expect(r.seen[0]?.raw.toString()).toContain('Body of message m1.');
    expect(r.seen[0]?.truncated).toBe(false);
    expect(await w.server.list('INBOX')).toEqual([]);
    const processed = await w.server.list('hv-processed');
    expect(processed.map((m) => m.messageId)).toEqual(['<m1@example.org>']);
    expect(processed[0]?.flags).toEqual(expect.arrayContaining(['\\Seen', PROCESSED_KEYWORD]));
    // More rounds (a new message wakes the source) do not hand m1 over again.
    await w.server.append(mail('m2'));
    await until(() => r.seen.length === 2, 'the second message');
    expect(r.ids()).toEqual(['<m1@example.org>', '<m2@example.org>']);
    expect(w.logs.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('a message over maxBytes is handed over as its header only, marked truncated', async () => {
    const w = await world();
    await w.server.append(mail('big').replace('Body of message big.', 'x'.repeat(4_000)));
    const r = recorder();
    await w.source({ pollSec: 3600, maxBytes: 1024 }).start(r.onMail);
    await until(() => r.seen.length === 1, 'the big message');
    const m = r.seen[0];
    expect(m?.truncated).toBe(true);
    expect(m?.size).toBeGreaterThan(4_000);
    expect(m?.raw.toString()).toContain('Subject: hv status big');
    expect(m?.raw.toString()).not.toContain('xxxx');
    expect(w.logs.map((l) => l.msg)).toContain('imap message over maxBytes; handing over its header only');
  });

  it('a restart does not hand a processed message over again; an unfinished one is handed over again', async () => {
    const w = await world();
    await w.server.append(mail('done-before-restart'));
    await w.server.append(mail('crashed-before-done'));
    const first = recorder();
    const a = w.source({ pollSec: 3600 });
    await a.start(async (m) => {
      first.seen.push(m);
      // The process "dies" handling the second message: no done().
      if (messageIdOf(m.raw) === '<crashed-before-done@example.org>') throw new Error('killed');
      await m.done();
    });
    await until(() => first.seen.length === 2, 'both messages');
    await a.stop();

    const second = recorder();
    await w.source({ pollSec: 3600 }).start(second.onMail);
    await w.connected(2);
    await until(() => second.seen.length === 1, 'the unfinished message');
    await w.server.append(mail('after-restart'));
    await until(() => second.seen.length === 2, 'the new message');
    expect(second.ids()).toEqual(['<crashed-before-done@example.org>', '<after-restart@example.org>']);
    const processed = (await w.server.list('hv-processed')).map((m) => m.messageId);
    expect(processed.sort()).toEqual(
      [
        '<after-restart@example.org>',
        '<crashed-before-done@example.org>',
        '<done-before-restart@example.org>',
      ].sort(),
    );
  });

  it('a message flagged processed but not yet moved (crash between the two) is moved, not handed over', async () => {
    const w = await world();
    const client = await w.server.client();
    await client.append('INBOX', Buffer.from(mail('flagged')), ['\\Seen', PROCESSED_KEYWORD]);
    await client.logout();
    const r = recorder();
    await w.source({ pollSec: 3600 }).start(r.onMail);
    await w.connected(1);
    await w.server.append(mail('fresh'));
    await until(() => r.seen.length === 1, 'the fresh message');
    expect(r.ids()).toEqual(['<fresh@example.org>']);
    const processed = (await w.server.list('hv-processed')).map((m) => m.messageId).sort();
    expect(processed).toEqual(['<flagged@example.org>', '<fresh@example.org>']);
  });

  it('a message arriving while the source waits in IDLE is picked up within seconds', async () => {
    const w = await world();
    const r = recorder();
    // Polling once an hour: only IDLE can bring the message in time.
    await w.source({ pollSec: 3600 }).start(r.onMail);
    await w.connected(1);
    expect(w.logs.find((l) => l.msg === 'imap intake connected')?.fields?.idle).toBe(true);
    await new Promise((r2) => setTimeout(r2, 1_500));
    const sent = Date.now();
    await w.server.append(mail('idle'));
    await until(() => r.seen.length === 1, 'the message announced through IDLE', 5_000);
    expect(Date.now() - sent).toBeLessThan(5_000);
    expect(r.ids()).toEqual(['<idle@example.org>']);
  });

  it('a server without IDLE and MOVE: polled every pollSec, moved by COPY and EXPUNGE', async () => {
    const w = await world({
      capabilities: [
        'IMAP4rev1',
        'SASL-IR',
        'LOGIN-REFERRALS',
        'ID',
        'ENABLE',
        'UNSELECT',
        'UIDPLUS',
        'LITERAL+',
        'NAMESPACE',
        'CHILDREN',
      ],
    });
    const r = recorder();
    await w.source({ pollSec: 1 }).start(r.onMail);
    await w.connected(1);
    expect(w.logs.find((l) => l.msg === 'imap intake connected')?.fields?.idle).toBe(false);
    await w.server.append(mail('polled'));
    await until(() => r.seen.length === 1, 'the polled message', 5_000);
    expect(await w.server.list('INBOX')).toEqual([]);
    expect((await w.server.list('hv-processed')).map((m) => m.messageId)).toEqual(['<polled@example.org>']);
  });

  it('a wrong password: a clear error (no password in it), retried with backoff, and it recovers', async () => {
    const w = await world({ password: 'wrong-pw-41f0c2' });
    await w.server.append(mail('waiting'));
    const r = recorder();
    const src = w.source({ pollSec: 3600 });
    await src.start(r.onMail);
    const refused = () => w.logs.filter((l) => l.msg.startsWith('imap login refused'));
    await until(() => refused().length >= 2, 'a refused login, retried');
    expect(refused()[0]?.level).toBe('error');
    expect(refused()[0]?.fields).toMatchObject({ user: 'hv', passwordFile: w.passwordFile });
    const text = JSON.stringify(w.logs);
    expect(text).not.toContain('wrong-pw-41f0c2');
    expect(text).not.toContain(PASSWORD);
    expect(r.seen).toEqual([]);
    // The admin fixes the password file: the next retry logs in and the mail goes through.
    writeFileSync(w.passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    await until(() => r.seen.length === 1, 'the message after the fix', 5_000);
    expect(r.ids()).toEqual(['<waiting@example.org>']);
  });

  it('the server going away: logged, reconnected, and mail sent meanwhile arrives once', async () => {
    const w = await world();
    const r = recorder();
    await w.source({ pollSec: 3600 }).start(r.onMail);
    await w.connected(1);
    // Kill the mail process serving this connection; dovecot itself stays up.
    expect(w.server.killSessions()).toBeGreaterThan(0);
    await w.connected(2);
    expect(w.logs.filter((l) => l.level !== 'info').length).toBeGreaterThan(0);
    await w.server.append(mail('after-drop'));
    await until(() => r.seen.length === 1, 'the message after reconnecting', 8_000);
    expect(r.ids()).toEqual(['<after-drop@example.org>']);
  });
});
