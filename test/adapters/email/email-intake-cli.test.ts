import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hvBin } from '../../fixtures/world.js';
import { MailSink } from '../../notify/smtp.js';
import { DkimDomain, message } from './dkim-signer.js';
import { DnsServer } from './dns-server.js';
import { audit, host, settled, spoolOf, writeConfig } from './intake-fixture.js';

let dns: DnsServer;
let sink: MailSink;
let keys: string;
let org: DkimDomain;
let dir: string;

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
  sink.mails.length = 0;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `hv email-intake` as an MTA's pipe runs it: the message on stdin; optionally as another uid. */
function intake(configPath: string, input: Buffer | string, uid?: number) {
  const argv = [process.execPath, hvBin, 'email-intake', '--config', configPath];
  const [cmd, ...args] =
    uid === undefined
      ? argv
      : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', ...argv];
  const r = spawnSync(cmd as string, args, { input, encoding: 'utf8', timeout: 60_000, cwd: '/' });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

const spooled = () => (existsSync(spoolOf(dir)) ? readdirSync(spoolOf(dir)) : []);

describe('hv email-intake (MTA pipe transport)', () => {
  it('not a mail message: exit 65 (EX_DATAERR), nothing written', () => {
    const { configPath } = writeConfig(dir, sink, dns);
    for (const garbage of ['hello world\n', '', '\x00\x01binary', 'Subject only: no from\n\nbody\n']) {
      const r = intake(configPath, garbage);
      expect(r.code).toBe(65);
      expect(r.stderr + r.stdout).toContain('not a mail message');
    }
    expect(existsSync(join(dir, 'chat'))).toBe(false);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('no daemon running: exit 0 with the message queued durably; the intake runs it when it starts', async () => {
    // Queued by root (as an MTA pipe running as root may): the file is the chat user's to read.
    const { configPath } = writeConfig(dir, sink, dns, { chatops: { user: 'nobody' } });
    const raw = org.sign(
      message({ from: 'alice@example.org', subject: 'hv status', messageId: '<queued@client.example>' }),
    );
    // As Postfix's pipe with flags=F hands it over: an mbox "From " envelope line first.
    const r = intake(
      configPath,
      Buffer.concat([Buffer.from('From alice@example.org  Sat Nov 28 08:00:00 2026\n'), raw]),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const files = spooled();
    expect(files).toHaveLength(1);
    expect(statSync(join(spoolOf(dir), files[0] as string)).mode & 0o777).toBe(0o600);
    expect(statSync(spoolOf(dir)).mode & 0o777).toBe(0o700);
    if (process.getuid?.() === 0)
      for (const p of [spoolOf(dir), join(spoolOf(dir), files[0] as string)])
        expect(statSync(p).uid).toBe(65534);
    // Nothing ran: no audit record, no state at all.
    expect(existsSync(join(dir, 'state'))).toBe(false);

    const h = await host(dir, sink, dns, () => new Date(), { chatops: { user: 'nobody' } });
    try {
      await settled(dir, h.bus);
      await sink.waitFor(1);
      expect(sink.mails[0]?.mail.inReplyTo).toBe('<queued@client.example>');
      expect(sink.mails[0]?.mail.text).toContain('Host:');
      expect(spooled()).toEqual([]);
      expect(audit(dir).map((a) => [a.actor.id, a.operation, a.result])).toEqual([
        ['alice@example.org', 'status', 'allowed'],
      ]);
      // While it runs, new mail is picked up as it arrives.
      const again = intake(configPath, org.sign(message({ from: 'alice@example.org', subject: 'hv help' })));
      expect(again.code, again.stderr).toBe(0);
      await sink.waitFor(2);
      expect(sink.mails[1]?.mail.text).toContain('status');
    } finally {
      await h.stop();
    }
  });

  it('runs as an unprivileged user whose only writable dir is the chat state dir; cannot queue: exit 75 (EX_TEMPFAIL)', () => {
    const { configPath } = writeConfig(dir, sink, dns);
    chmodSync(dir, 0o755);
    chmodSync(configPath, 0o644);
    const chat = join(dir, 'chat');
    mkdirSync(chat, { mode: 0o700 });
    const raw = message({ from: 'alice@example.org', subject: 'hv status' });
    // The chat dir is root's: the MTA's user cannot queue, and the MTA must retry later.
    let r = intake(configPath, raw, 65534);
    expect(r.code).toBe(75);
    expect(r.stderr).toContain(`${chat}/mail-spool`);
    expect(spooled()).toEqual([]);
    chownSync(chat, 65534, 65534);
    r = intake(configPath, raw, 65534);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const files = spooled();
    expect(files).toHaveLength(1);
    expect(statSync(join(spoolOf(dir), files[0] as string)).uid).toBe(65534);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('a config without an email intake, or no config it can read: exit 75 (the MTA keeps the mail)', () => {
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({ allowNonRoot: true, paths: { state: join(dir, 'state') } }));
    const raw = message({ from: 'alice@example.org', subject: 'hv status' });
    const r = intake(configPath, raw);
    expect(r.code).toBe(75);
    expect(r.stderr).toContain('no email channel has "intake"');
    expect(intake(join(dir, 'missing.json'), raw).code).toBe(75);
  });
});
