import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spool } from '../../../adapters/email/intake/spool.js';
import { MailSink } from '../../notify/smtp.js';
import { DkimDomain, message } from './dkim-signer.js';
import { DnsServer } from './dns-server.js';
import { audit, type Hosted, host, settled } from './intake-fixture.js';

let dns: DnsServer;
let sink: MailSink;
let keys: string;
let org: DkimDomain;
let dir: string;
let t: number;
let h: Hosted | undefined;

beforeAll(async () => {
  dns = await DnsServer.start();
  sink = await MailSink.start();
  keys = mkdtempSync(join(tmpdir(), 'hv-dkim-'));
  org = new DkimDomain('example.org', keys, dns);
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
  await h?.stop();
  h = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function deliver(raw: Buffer): Promise<void> {
  if (!h) throw new Error('not started');
  spool(join(dir, 'chat'), raw);
  await settled(dir, h.bus);
}

/** The next mail hv sends: waits for it and returns it. */
async function nextMail() {
  const n = seen + 1;
  await sink.waitFor(n);
  seen = n;
  const m = sink.mails[n - 1]?.mail;
  if (!m) throw new Error('no mail');
  return m;
}
let seen = 0;
beforeEach(() => {
  seen = 0;
});

/** A signed reply from `from` to hv's confirmation mail (Subject keeps the tag, the prompt quoted). */
const answer = (from: string, subject: string, inReplyTo: string) =>
  org.sign(
    message({
      from,
      subject: `Re: ${subject}`,
      body: 'yes, go ahead\n\n> Run `hv system-upgrade` on hv01?',
      headers: { 'In-Reply-To': inReplyTo, References: inReplyTo },
    }),
  );

const tokenOf = (subject: string | undefined) => /\[hv:([^\]]+)\]/.exec(subject ?? '')?.[1] ?? '';

describe('email intake: confirmations by reply', () => {
  it('system-upgrade waits for a reply carrying the token from an authenticated admin; operator, foreign and reused tokens are refused with a reply', async () => {
    h = await start();
    await deliver(org.sign(message({ from: 'alice@example.org', subject: 'hv system-upgrade' })));
    const prompt = await nextMail();
    expect(prompt.subject).toMatch(
      /^\[hv:[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\] Confirm: hv system-upgrade on hv01$/,
    );
    expect(prompt.text).toContain('Run `hv system-upgrade` on hv01?');
    expect(prompt.text).toContain('reply to this mail from an admin address');
    expect(prompt.headers.get('auto-submitted')).toBe('auto-replied');
    const token = tokenOf(prompt.subject);
    const promptId = prompt.messageId ?? '';
    // The HMAC key is root-only.
    expect(statSync(join(dir, 'state', 'confirm.key')).mode & 0o777).toBe(0o600);
    const nothingRan = () => {
      expect(h?.bus.store.unreported()).toEqual([]);
      expect(audit(dir).filter((a) => a.result === 'confirmed')).toEqual([]);
    };
    nothingRan();

    // An operator's reply (authenticated, but not an admin): refused, said in a short reply.
    await deliver(answer('olga@example.org', prompt.subject ?? '', promptId));
    expect((await nextMail()).text).toContain('not authorised: only an admin can confirm this');
    nothingRan();

    // A token hv did not issue (made up, from another host): refused.
    const foreign = (prompt.subject ?? '').replace(token, `${token.slice(0, 17)}AAAAAAAAAAAAAAAAAAAAAA`);
    await deliver(answer('alice@example.org', foreign, promptId));
    expect((await nextMail()).text).toMatch(/unknown or was already used|not one hv issued/);
    const forged = (prompt.subject ?? '').replace(token, 'not-a-token.atall-really');
    await deliver(answer('alice@example.org', forged, promptId));
    expect((await nextMail()).text).toContain('not one hv issued on this host');
    nothingRan();

    // The admin's reply: it runs (and is refused by the safety gate: nothing was tested here).
    await deliver(answer('alice@example.org', prompt.subject ?? '', promptId));
    const started = await nextMail();
    const result = started.text?.includes('started') ? await nextMail() : started;
    expect(result.text).toMatch(/^REFUSED on hv01/);
    expect(result.inReplyTo).toBeDefined();
    const done = audit(dir).filter((a) => a.operation === 'system-upgrade');
    expect(done.map((a) => [a.actor.id, a.result])).toEqual([
      ['alice@example.org', 'allowed'],
      ['olga@example.org', 'denied'],
      ['alice@example.org', 'confirmed'],
      ['alice@example.org', 'refused'],
    ]);

    // The same token again, in a new reply: used.
    const before = done.length;
    await deliver(answer('alice@example.org', prompt.subject ?? '', promptId));
    expect((await nextMail()).text).toContain('unknown or was already used');
    expect(audit(dir).filter((a) => a.operation === 'system-upgrade')).toHaveLength(before);
  });

  it('an expired token is refused with a reply', async () => {
    h = await start({ chatops: { confirmTimeoutSec: 60 } });
    await deliver(org.sign(message({ from: 'alice@example.org', subject: 'hv rollback --to 1' })));
    const prompt = await nextMail();
    expect(prompt.subject).toContain('Confirm: hv rollback --to 1 on hv01');
    t += 61_000;
    await deliver(answer('alice@example.org', prompt.subject ?? '', prompt.messageId ?? ''));
    expect((await nextMail()).text).toMatch(/expired at .*run the command again/);
    expect(h.bus.store.unreported()).toEqual([]);
  });

  it('with approvals 2, the second, different admin applies it; the first admin twice does not', async () => {
    h = await start({ chatops: { approvals: { 'system-upgrade': 2 } } });
    await deliver(org.sign(message({ from: 'alice@example.org', subject: 'hv system-upgrade' })));
    const prompt = await nextMail();
    expect(prompt.text).toContain('Needs 2 different admins to approve.');
    await deliver(answer('alice@example.org', prompt.subject ?? '', prompt.messageId ?? ''));
    const again = await nextMail();
    expect(again.text).toContain('Approved by alice@example.org; 1 more admin must approve.');
    expect(tokenOf(again.subject)).toBe(tokenOf(prompt.subject));
    await deliver(answer('alice@example.org', prompt.subject ?? '', prompt.messageId ?? ''));
    expect((await nextMail()).text).toContain('You already approved');
    expect(h.bus.store.unreported()).toEqual([]);

    await deliver(answer('bob@example.org', prompt.subject ?? '', prompt.messageId ?? ''));
    const started = await nextMail();
    const result = started.text?.includes('started') ? await nextMail() : started;
    expect(result.text).toMatch(/^REFUSED on hv01/);
    expect(
      audit(dir)
        .filter((a) => a.operation === 'system-upgrade')
        .map((a) => [a.actor.id, a.result]),
    ).toEqual([
      ['alice@example.org', 'allowed'],
      ['alice@example.org', 'approved'],
      ['bob@example.org', 'confirmed'],
      ['alice@example.org', 'refused'],
    ]);
  });
});

function start(opts: Parameters<typeof host>[4] = {}): Promise<Hosted> {
  return host(dir, sink, dns, () => new Date(t), opts);
}
