import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hvBin } from '../fixtures/world.js';
import { emailChannel, HungServer, hvAsync, MailSink } from './smtp.js';

/** A host config without Nix: enough for `hv notify`. */
function sandbox(channels: unknown[], notify: Record<string, unknown> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'hv-notify-'));
  const config = {
    host: 'hv01',
    allowNonRoot: true,
    paths: {
      state: join(root, 'state'),
      log: join(root, 'log'),
      motd: join(root, 'motd'),
    },
    notify: { channels, ...notify },
  };
  const configPath = join(root, 'config.json');
  writeFileSync(configPath, JSON.stringify(config));
  return { root, configPath, wall: join(root, 'wall.txt') };
}

function wallChannel(file: string) {
  return { type: 'wall', command: ['sh', '-c', `cat >> '${file}'; echo '--' >> '${file}'`] };
}

/** A loopback port nobody listens on (privileged, unused): connections are refused. */
const DOWN_PORT = 1;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('hv notify test', () => {
  it('delivers through every channel; one down: exit 1 naming it and the error', async () => {
    const sink = await MailSink.start();
    cleanups.push(() => sink.close());
    const s = sandbox([
      { type: 'motd' },
      wallChannel(join(tmpdir(), 'x')),
      emailChannel('ops-mail', sink.port),
      emailChannel('backup-mail', DOWN_PORT),
    ]);
    writeFileSync(s.configPath, readFileSync(s.configPath, 'utf8').replace(join(tmpdir(), 'x'), s.wall));
    cleanups.push(() => rmSync(s.root, { recursive: true, force: true }));

    const r = await hvAsync(s, ['notify', 'test']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/backup-mail\s+FAILED: SMTP 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(r.stderr).toMatch(/ops-mail\s+delivered/);
    expect(r.stderr).toMatch(/1 of 4 channel\(s\) failed: backup-mail/);
    expect(sink.mails).toHaveLength(1);
    const mail = sink.mails[0]?.mail;
    expect(mail?.subject).toMatch(/^\[hv01\] Test notification from hv/);
    expect(mail?.text).toContain('hv status');
    expect(mail?.html).toContain('<h2>');
    expect(readFileSync(s.wall, 'utf8')).toContain('Test notification');

    // --json: one object, each channel with its outcome; --channel limits it to one.
    const j = await hvAsync(s, ['notify', 'test', '--channel', 'ops-mail', '--json']);
    expect(j.code).toBe(0);
    expect(j.json.status).toBe('ok');
    expect(j.json.channels).toEqual([expect.objectContaining({ channel: 'ops-mail', ok: true })]);
    expect(sink.mails).toHaveLength(2);
    // A test is not deduplicated and leaves nothing in the outbox.
    const list = await hvAsync(s, ['notify', 'list', '--json']);
    expect(list.json.deliveries).toEqual([]);
  });

  it('unknown channel name: exit 2 listing the configured names', () => {
    const s = sandbox([{ type: 'motd' }, emailChannel('ops-mail', 25)]);
    cleanups.push(() => rmSync(s.root, { recursive: true, force: true }));
    const r = spawnSync(
      process.execPath,
      [hvBin, 'notify', 'test', '--channel', 'pager', '--config', s.configPath],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown channel "pager"; configured channels: motd, ops-mail/);
    const bad = spawnSync(process.execPath, [hvBin, 'notify', 'send', '--config', s.configPath], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/action: .*'test' \| 'list' \| 'retry'/);
  });

  it('the motd is a notice board: notify test says so, and events leave nothing for it in the outbox', () => {
    const s = sandbox([{ type: 'motd' }]);
    cleanups.push(() => rmSync(s.root, { recursive: true, force: true }));
    const r = spawnSync(process.execPath, [hvBin, 'notify', 'test', '--config', s.configPath], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/motd\s+a notice board: it shows what is pending, nothing is sent/);
    const list = spawnSync(process.execPath, [hvBin, 'notify', 'list', '--config', s.configPath], {
      encoding: 'utf8',
    });
    expect(list.stdout).toMatch(/No undelivered notifications/);
  });

  it('a hung mail server costs only its own timeout', async () => {
    const hung = await HungServer.start();
    const sink = await MailSink.start();
    cleanups.push(
      () => hung.close(),
      () => sink.close(),
    );
    const s = sandbox([emailChannel('hung', hung.port, { timeoutSec: 2 }), emailChannel('ok', sink.port)]);
    cleanups.push(() => rmSync(s.root, { recursive: true, force: true }));
    const r = await hvAsync(s, ['notify', 'test', '--json']);
    expect(r.code).toBe(1);
    const byName = Object.fromEntries(
      (r.json.channels as { channel: string; ok: boolean; error?: string; ms: number }[]).map((c) => [
        c.channel,
        c,
      ]),
    );
    expect(byName.hung?.ok).toBe(false);
    expect(byName.hung?.error).toMatch(/timed out|timeout/i);
    expect(byName.ok?.ok).toBe(true);
    expect(byName.ok?.ms).toBeLessThan(1500);
    expect(r.ms).toBeLessThan(8000);
  });
});

describe('email channel config', () => {
  const base = (channel: Record<string, unknown>) => ({
    allowNonRoot: true,
    paths: { state: '/tmp/hv-never-written/state', log: '/tmp/hv-never-written/log' },
    notify: { channels: [channel] },
  });
  const good = emailChannel('mail', 25);
  it.each([
    [
      { ...good, type: 'mail' },
      /notify\.channels\[0\]\.type: "mail" is not a channel type; must be one of .*email/,
    ],
    [{ ...good, to: undefined }, /notify\.channels\[0\]\.to: is required/],
    [{ ...good, to: [] }, /notify\.channels\[0\]\.to: must list at least one recipient/],
    [{ ...good, to: ['not-an-address'] }, /notify\.channels\[0\]\.to\[0\]: must be an email address/],
    [
      { ...good, smtp: { host: '127.0.0.1', port: 0 } },
      /notify\.channels\[0\]\.smtp\.port: must be a port number from 1 to 65535/,
    ],
    [
      { ...good, smtp: { host: '127.0.0.1', port: 70000 } },
      /notify\.channels\[0\]\.smtp\.port: must be a port number from 1 to 65535/,
    ],
    [
      { ...good, smtp: { host: '127.0.0.1', port: 25.5 } },
      /notify\.channels\[0\]\.smtp\.port: must be integer, got float/,
    ],
    [
      { ...good, smtp: { host: '127.0.0.1', port: '25' } },
      /notify\.channels\[0\]\.smtp\.port: must be number, got string/,
    ],
    [
      { ...good, digest: 'hourly' },
      /notify\.channels\[0\]\.digest: "hourly" is not allowed; must be one of daily, weekly, monthly/,
    ],
    [
      { ...good, smtp: { host: '127.0.0.1', passwordFile: 'secret' } },
      /notify\.channels\[0\]\.smtp\.passwordFile: must be an absolute path/,
    ],
    [
      { ...good, smtp: { host: '127.0.0.1', password: 'hunter2' } },
      /notify\.channels\[0\]\.smtp\.password: unknown key/,
    ],
    [
      { ...good, events: ['update.ready'] },
      /notify\.channels\[0\]\.events\[0\]: "update.ready" is not allowed; must be one of update\.available/,
    ],
  ])('rejects %j with exit 2 naming the key and what is allowed', (channel, message) => {
    const root = mkdtempSync(join(tmpdir(), 'hv-config-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const path = join(root, 'config.json');
    writeFileSync(path, JSON.stringify(base(channel)));
    const r = spawnSync(process.execPath, [hvBin, 'notify', 'test', '--config', path], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    // The secret never appears in what hv prints.
    expect(r.stderr).not.toContain('hunter2');
  });
});
