import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spool } from '../../../adapters/email/intake/spool.js';
import { MailSink } from '../../notify/smtp.js';
import { DkimDomain, message } from './dkim-signer.js';
import { DnsServer } from './dns-server.js';
import { audit, type Hosted, host, settled, spoolOf } from './intake-fixture.js';

let dns: DnsServer;
let sink: MailSink;
let keys: string;
let org: DkimDomain;
let net: DkimDomain;
let dir: string;
let t: number;
let hosted: Hosted[] = [];

beforeAll(async () => {
  dns = await DnsServer.start();
  sink = await MailSink.start();
  keys = mkdtempSync(join(tmpdir(), 'hv-dkim-'));
  org = new DkimDomain('example.org', keys, dns);
  net = new DkimDomain('example.net', keys, dns);
});
afterAll(async () => {
  await dns.close();
  await sink.close();
  rmSync(keys, { recursive: true, force: true });
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hv-mail-'));
  t = Date.now();
  sink.mails.length = 0;
});
afterEach(async () => {
  for (const h of hosted) await h.stop();
  hosted = [];
  rmSync(dir, { recursive: true, force: true });
});

async function start(opts: Parameters<typeof host>[4] = {}): Promise<Hosted> {
  const h = await host(dir, sink, dns, () => new Date(t), opts);
  hosted.push(h);
  return h;
}

/** Queue one message as `hv email-intake` would and wait until the chat process handled it. */
async function deliver(h: Hosted, raw: Buffer | string): Promise<void> {
  spool(join(dir, 'chat'), typeof raw === 'string' ? Buffer.from(raw) : raw);
  await settled(dir, h.bus);
}

/** No mail reaches the sink within a moment (replies are sent before the bus call returns). */
async function noReply(): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  expect(
    sink.mails.map((m) => `${m.mail.subject} → ${m.mail.to && 'text' in m.mail.to ? m.mail.to.text : ''}`),
  ).toEqual([]);
}

const statusMail = (from = 'Alice <alice@example.org>', extra: Partial<Parameters<typeof message>[0]> = {}) =>
  message({ from, subject: 'hv status', body: 'Thanks!\n-- \nAlice', ...extra });

describe('email intake: authenticated commands', () => {
  it('hv status from an admin, DKIM-signed by the From domain: a threaded reply with the status, from the intake address', async () => {
    const h = await start();
    const raw = org.sign(statusMail('Alice <Alice@Example.org>', { messageId: '<status-1@client.example>' }));
    await deliver(h, raw);
    await sink.waitFor(1);
    const reply = sink.mails[0]?.mail;
    expect(reply?.from?.value[0]?.address).toBe('hv@hv01.example.org');
    expect(reply?.to && 'value' in reply.to ? reply.to.value[0]?.address : '').toBe('alice@example.org');
    expect(reply?.subject).toBe('Re: hv status');
    expect(reply?.inReplyTo).toBe('<status-1@client.example>');
    expect(reply?.references).toContain('<status-1@client.example>');
    expect(reply?.headers.get('auto-submitted')).toBe('auto-replied');
    expect(reply?.text).toContain('Host:');
    expect(reply?.html).toContain('Host:');
    expect(audit(dir).map((a) => [a.actor.id, a.operation, a.result])).toEqual([
      ['alice@example.org', 'status', 'allowed'],
    ]);
  });

  it('the command may be the first unquoted body line; an operator is refused in a short reply', async () => {
    const h = await start();
    const body = '\n> hv system-upgrade\n\nhv upgrade-test --allow-downgrade\n\nOn Mon, hv wrote:\n> old';
    await deliver(h, org.sign(message({ from: 'olga@example.org', subject: 'Re: weekly', body })));
    await sink.waitFor(1);
    expect(sink.mails[0]?.mail.text).toMatch(
      /not authorised: "upgrade-test --allow-downgrade" needs the admin role/,
    );
    const denied = audit(dir).at(-1);
    expect(denied).toMatchObject({
      actor: { id: 'olga@example.org' },
      operation: 'upgrade-test',
      result: 'denied',
    });
  });
});

describe('email intake: unauthenticated mail runs nothing and is not answered', () => {
  const cases: [string, () => Buffer | string, RegExp][] = [
    ['unsigned', () => statusMail(), /no DKIM signature/],
    [
      'signed by another domain',
      () => net.sign(statusMail()),
      /d=example\.net does not align with the From domain example\.org/,
    ],
    [
      'a broken body hash',
      () => Buffer.from(org.sign(statusMail()).toString().replace('Thanks!', 'Thanks?')),
      /body hash did not verify/,
    ],
    [
      'a second From above the signed one',
      () => `From: mallory@evil.example\r\n${org.sign(statusMail()).toString()}`,
      /more than one From address|more than one from field/,
    ],
  ];
  for (const [what, make, reason] of cases)
    it(`${what}: no operation, no reply; the audit names the reason`, async () => {
      const h = await start();
      await deliver(h, make());
      await noReply();
      const records = audit(dir);
      expect(records.filter((r) => r.result !== 'denied')).toEqual([]);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        operation: 'status',
        result: 'denied',
        details: { identity: 'unverified' },
      });
      expect(String(records[0]?.details?.reason)).toMatch(reason);
      expect(h.bus.store.unreported()).toEqual([]);
    });

  it('SPF alone never counts, and a forged Authentication-Results counts only from the trusted authserv-id', async () => {
    const h = await start({ intake: { trustedAuthservId: 'mx.hv01.example.org' } });
    const forged = statusMail('alice@example.org', {
      headers: {
        'Authentication-Results':
          'mx.evil.example; spf=pass smtp.mailfrom=example.org; dmarc=pass header.from=example.org',
      },
    });
    await deliver(h, forged);
    await noReply();
    expect(String(audit(dir)[0]?.details?.reason)).toMatch(/no DKIM signature/);
    // The local MTA's verdict (its header on top) is trusted.
    const trusted = statusMail('alice@example.org', {
      messageId: '<trusted@client.example>',
      headers: {},
    }).replace(
      /^/,
      'Authentication-Results: mx.hv01.example.org; dkim=pass header.d=example.org; dmarc=pass (p=reject) header.from=example.org\r\n',
    );
    await deliver(h, trusted);
    await sink.waitFor(1);
    expect(sink.mails[0]?.mail.inReplyTo).toBe('<trusted@client.example>');
  });
});

describe('email intake: DNS trouble', () => {
  it('a key that cannot be looked up (SERVFAIL) is no verdict: the message stays queued and runs once DNS answers', async () => {
    const h = await start();
    dns.servfail = true;
    try {
      spool(
        join(dir, 'chat'),
        org.sign(statusMail('alice@example.org', { messageId: '<dns@client.example>' })),
      );
      await new Promise((r) => setTimeout(r, 1500));
      expect(readdirSync(spoolOf(dir)).filter((n) => n.endsWith('.eml'))).toHaveLength(1);
      expect(audit(dir)).toEqual([]);
    } finally {
      dns.servfail = false;
    }
    await settled(dir, h.bus);
    await sink.waitFor(1);
    expect(sink.mails[0]?.mail.inReplyTo).toBe('<dns@client.example>');
  });
});

describe('email intake: duplicates, loops, limits', () => {
  it('the same Message-ID delivered twice (an MTA retry), also after a restart: one operation, one reply', async () => {
    const first = await start();
    const raw = org.sign(statusMail('alice@example.org', { messageId: '<twice@client.example>' }));
    await deliver(first, raw);
    await deliver(first, raw);
    await first.stop();
    hosted = [];
    const second = await start();
    await deliver(second, raw);
    await sink.waitFor(1);
    await noReplyBeyond(1);
    expect(audit(dir).filter((a) => a.result === 'allowed')).toHaveLength(1);
  });

  const robots: [string, () => string][] = [
    [
      'an auto-reply',
      () => statusMail('alice@example.org', { headers: { 'Auto-Submitted': 'auto-replied' } }),
    ],
    ['list mail', () => statusMail('alice@example.org', { headers: { 'List-Id': '<ops.example.org>' } })],
    ['bulk mail', () => statusMail('alice@example.org', { headers: { Precedence: 'bulk' } })],
    [
      'a bounce',
      () =>
        message({
          from: 'MAILER-DAEMON@example.org',
          subject: 'Undelivered Mail Returned to Sender',
          body: 'hv status',
          headers: { 'Return-Path': '<>' },
        }),
    ],
  ];
  for (const [what, make] of robots)
    it(`${what}, even DKIM-signed: no reply, nothing runs, audited`, async () => {
      const h = await start();
      await deliver(h, org.sign(make()));
      await noReply();
      expect(audit(dir).map((a) => a.result)).toEqual(['denied']);
      expect(String(audit(dir)[0]?.details?.reason)).toMatch(/not answered/);
    });

  it('a message larger than maxBytes is refused unread, and more than ratePerMinute from one sender are dropped', async () => {
    const h = await start({ intake: { maxBytes: 4096, ratePerMinute: 2 } });
    await deliver(h, org.sign(statusMail('alice@example.org', { body: 'x'.repeat(8000) })));
    await noReply();
    expect(String(audit(dir)[0]?.details?.reason)).toMatch(/larger than intake.maxBytes/);
    for (let i = 0; i < 3; i++) await deliver(h, org.sign(statusMail('alice@example.org')));
    await sink.waitFor(2);
    await noReplyBeyond(2);
    expect(String(audit(dir).at(-1)?.details?.reason)).toMatch(/more than 2 mails a minute/);
  });
});

async function noReplyBeyond(n: number): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  expect(sink.mails).toHaveLength(n);
}
