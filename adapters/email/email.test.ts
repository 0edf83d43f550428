import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { makeEvent } from '../../src/notify/events.js';
import { DeliveryError } from '../../src/ports/channel.js';
import { ExecaRunner } from '../../src/proc.js';
import { readSecret } from '../../src/services.js';
import { emailChannel, MailSink } from '../../test/notify/smtp.js';
import { channelTypes } from '../registry.js';
import { email } from './index.js';
import type { EmailChannel } from './schema.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function adapter(extra: Record<string, unknown> = {}, smtp: Record<string, unknown> = {}) {
  const sink = await MailSink.start();
  const root = mkdtempSync(join(tmpdir(), 'hv-email-'));
  cleanups.push(
    () => sink.close(),
    () => rmSync(root, { recursive: true, force: true }),
  );
  const channel = emailChannel('ops-mail', sink.port, extra);
  channel.smtp = { ...channel.smtp, ...smtp } as typeof channel.smtp;
  const config = parseConfig(
    {
      host: 'hv01',
      paths: { state: join(root, 'state'), log: join(root, 'log') },
      notify: { channels: [channel], timeoutSec: 5 },
    },
    channelTypes,
  );
  const logged: string[] = [];
  const a = await email.create(config.notify.channels[0] as EmailChannel, {
    config,
    runner: new ExecaRunner(),
    now: () => new Date(),
    readSecret,
    log: (_l, msg, fields) => logged.push(`${msg} ${JSON.stringify(fields)}`),
  });
  return { a, sink, root, logged };
}

const event = makeEvent('update.available', {
  host: 'hv01',
  key: 'k',
  title: 'NixOS update available: nixos-24.05 2024-09-03',
  data: { branch: 'nixos-24.05' },
  next: 'hv upgrade-test',
});

describe('email adapter over loopback SMTP', () => {
  it('logs in with the password file and never shows the password', async () => {
    const root = mkdtempSync(join(tmpdir(), 'hv-secret-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const secret = join(root, 'smtp');
    writeFileSync(secret, 's3cret-pass\n', { mode: 0o600 });
    const { a, sink, logged } = await adapter({}, { user: 'hv', passwordFile: secret });
    await a.deliver(event, { id: 'd1', attempt: 1 });
    expect(sink.mails[0]).toMatchObject({ user: 'hv', password: 's3cret-pass' });
    // Unreadable secret: a retryable failure that names the file, not a crash.
    rmSync(secret);
    const e = await a.deliver(event, { id: 'd2', attempt: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeliveryError);
    expect((e as DeliveryError).permanent).toBe(false);
    expect((e as Error).message).toContain(secret);
    expect(JSON.stringify(logged)).not.toContain('s3cret-pass');
  });

  it('the same delivery id gives the same Message-ID (receivers can drop a resend)', async () => {
    const { a, sink } = await adapter();
    await a.deliver(event, { id: 'ev1.ops-mail', attempt: 1 });
    await a.deliver(event, { id: 'ev1.ops-mail', attempt: 2 });
    await a.deliver(event, { id: 'ev2.ops-mail', attempt: 1 });
    const ids = sink.mails.map((m) => m.mail.messageId);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(sink.mails[0]?.mail.headers.get('x-hv-delivery')).toBe('ev1.ops-mail');
  });

  it('4xx is retryable, 5xx permanent; both name the server and the reply', async () => {
    const { a, sink } = await adapter();
    sink.refuse = () => 452;
    const soft = (await a.deliver(event, { id: 's', attempt: 1 }).catch((x: unknown) => x)) as DeliveryError;
    expect(soft).toBeInstanceOf(DeliveryError);
    expect(soft.permanent).toBe(false);
    expect(soft.message).toMatch(/^SMTP 127\.0\.0\.1:\d+: 452 .*Try again later/);
    sink.refuse = () => 554;
    const hard = (await a.deliver(event, { id: 'h', attempt: 1 }).catch((x: unknown) => x)) as DeliveryError;
    expect(hard.permanent).toBe(true);
    expect(hard.message).toMatch(/554 .*Rejected for good/);
  });

  it('requireTLS never sends in clear (here: the server has no usable TLS)', async () => {
    const { a, sink } = await adapter({}, { requireTLS: true });
    const e = (await a.deliver(event, { id: 't', attempt: 1 }).catch((x: unknown) => x)) as DeliveryError;
    expect(e).toBeInstanceOf(DeliveryError);
    expect(e.message).toMatch(/STARTTLS|certificate/i);
    expect(sink.mails).toHaveLength(0);
  });

  it('a digest is one mail with a text and an HTML part listing every event', async () => {
    const { a, sink } = await adapter({ digest: 'monthly' });
    const at = new Date(2024, 8, 3, 10);
    const events = ['one', 'two', 'three'].map((t) =>
      makeEvent('release.available', { host: 'hv01', key: t, title: `Newer release ${t}` }, at),
    );
    await a.sendDigest?.(events, { id: 'digest.ops-mail.2024-09', attempt: 1 });
    expect(sink.mails).toHaveLength(1);
    const m = sink.mails[0]?.mail;
    expect(m?.subject).toBe('[hv01] Monthly digest 2024-09: 3 notifications');
    for (const t of ['one', 'two', 'three']) {
      expect(m?.text).toContain(`Newer release ${t}`);
      expect(m?.html).toContain(`Newer release ${t}`);
    }
  });
});
