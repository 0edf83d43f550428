import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from '../fixtures/world.js';
import { emailChannel, HungServer, hvAsync, MailSink } from './smtp.js';

let world: World | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  world?.cleanup();
  world = undefined;
});

async function sink(port = 0): Promise<MailSink> {
  const s = await MailSink.start(port);
  closers.push(() => s.close());
  return s;
}

function wallChannel(w: World) {
  const file = w.paths.wall;
  return { type: 'wall', command: ['sh', '-c', `cat >> '${file}'; echo '--' >> '${file}'`] };
}

/** A world whose notify channels are `channels` (plus the local motd and wall). */
function worldWith(channels: unknown[], notify: Record<string, unknown> = {}): World {
  const w = new World({ branches: ['nixos-24.05'] });
  w.config.notify = { channels: [{ type: 'motd' }, wallChannel(w), ...channels], ...notify };
  w.writeConfig();
  world = w;
  return w;
}

function outbox(
  w: World,
): { id: string; channel: string; state: string; attempts: number; lastError?: string }[] {
  const dir = join(w.paths.state, 'notify', 'outbox');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('email notifications on a real Nix', () => {
  it('an update found: exactly one mail with host, branch, old and new revision and date, text and HTML, the next command', async () => {
    const mail = await sink();
    const w = worldWith([emailChannel('ops-mail', mail.port)]);
    const lock = JSON.parse(w.read(join(w.flakeDir, 'flake.lock'))).nodes.nixpkgs.locked;
    const newRev = w.upstream.advance('nixos-24.05');

    const r = await hvAsync(w, ['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(mail.mails).toHaveLength(1);
    const m = mail.mails[0]?.mail;
    if (!m) throw new Error('no mail');
    expect(m.subject).toBe(`[hv01] NixOS update available: nixos-24.05 ${r.json.available.date}`);
    expect(m.from?.text).toBe('hv@hv01.example.org');
    expect((Array.isArray(m.to) ? m.to[0] : m.to)?.text).toBe('ops@example.org');
    expect(m.messageId).toMatch(/^<[^@\s]+@hv01\.hv\.invalid>$/);
    expect(m.headers.get('auto-submitted')).toBe('auto-generated');
    const text = m.text ?? '';
    const html = typeof m.html === 'string' ? m.html : '';
    for (const part of [text, html]) {
      expect(part).toContain('hv01');
      expect(part).toContain('nixos-24.05');
      expect(part).toContain(lock.rev);
      expect(part).toContain(newRev);
      expect(part).toContain(r.json.current.date);
      expect(part).toContain(r.json.available.date);
      expect(part).toContain('hv upgrade-test');
      expect(part).toContain(w.paths.updateText);
    }
    expect(html).toMatch(/<table>/);
    expect(w.wallMessages()).toHaveLength(1);

    // The same update again: no second mail, nothing left undelivered.
    const again = await hvAsync(w, ['check-updates']);
    expect(again.code).toBe(100);
    await sleep(300);
    expect(mail.mails).toHaveLength(1);
    expect(outbox(w).filter((d) => d.state !== 'done')).toEqual([]);
    // A newer revision is a new fact: one more mail.
    const newer = w.upstream.advance('nixos-24.05');
    expect((await hvAsync(w, ['check-updates'])).code).toBe(100);
    expect(mail.mails).toHaveLength(2);
    expect(mail.mails[1]?.mail.text).toContain(newer);
  });

  it('SMTP says 451 twice, then accepts: the mail arrives once, after the retries', async () => {
    const mail = await sink();
    mail.refuse = (n) => (n <= 2 ? 451 : null);
    const w = worldWith([emailChannel('ops-mail', mail.port)], { backoffSec: 0.2 });
    w.upstream.advance('nixos-24.05');
    const r = await hvAsync(w, ['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(mail.offered).toBe(3);
    expect(mail.mails).toHaveLength(1);
    expect(r.stderr).toMatch(/will retry.*451/);
    const d = outbox(w).find((x) => x.channel === 'ops-mail');
    expect(d).toMatchObject({ state: 'done', attempts: 3 });
    expect((await hvAsync(w, ['notify', 'list', '--json'])).json.deliveries).toEqual([]);
  });

  it('SMTP refuses for good (550) or keeps saying 4xx: dead after maxAttempts, shown by status and list, delivered by hv notify retry', async () => {
    const mail = await sink();
    mail.refuse = () => 550;
    const w = worldWith([emailChannel('ops-mail', mail.port)], { backoffSec: 0.1, maxAttempts: 3 });
    w.upstream.advance('nixos-24.05');
    expect((await hvAsync(w, ['check-updates'])).code).toBe(100);
    // 550 is permanent: one attempt, then kept as dead.
    expect(mail.offered).toBe(1);
    const status = await hvAsync(w, ['status', '--json']);
    expect(status.json.notifications['ops-mail']).toMatchObject({ dead: 1, pending: 0, retrying: 0 });
    const human = await hvAsync(w, ['status']);
    expect(human.stdout).toMatch(
      /Notify ops-mail: 1 dead \(last error: SMTP 127\.0\.0\.1:\d+: 550 .*\) — hv notify retry/,
    );

    // 4xx on every try: given up after maxAttempts (3).
    mail.refuse = () => 421;
    const list1 = await hvAsync(w, ['notify', 'retry']);
    expect(list1.code).toBe(1);
    expect(mail.offered).toBe(1 + 3);
    expect(list1.stderr).toMatch(/still undelivered/);
    expect(outbox(w).find((d) => d.channel === 'ops-mail')).toMatchObject({ state: 'dead', attempts: 3 });
    const list = await hvAsync(w, ['notify', 'list']);
    expect(list.stdout).toMatch(/ops-mail {2}dead {2}NixOS update available.*\n.*last error: .*421/);

    mail.refuse = () => null;
    const retry = await hvAsync(w, ['notify', 'retry', '--json']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.json).toMatchObject({ status: 'ok', retried: 1, delivered: 1 });
    expect(mail.mails).toHaveLength(1);
    expect((await hvAsync(w, ['status', '--json'])).json.notifications).toEqual({});
  });

  it('one mail server hangs: wall and the other mail deliver within their own timeout; the hung one stays pending and is retried later', async () => {
    const hung = await HungServer.start();
    closers.push(() => hung.close());
    const good = await sink();
    const w = worldWith([
      emailChannel('hung-mail', hung.port, { timeoutSec: 3 }),
      emailChannel('ops-mail', good.port),
    ]);
    w.upstream.advance('nixos-24.05');
    const r = await hvAsync(w, ['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(good.mails).toHaveLength(1);
    expect(w.wallMessages()).toHaveLength(1);
    expect(hung.connectedAt.length).toBeGreaterThanOrEqual(1);
    // The good channel did not wait for the hung one.
    expect((good.mails[0]?.at ?? 0) - (hung.connectedAt[0] ?? 0)).toBeLessThan(2000);
    const notes = r.json.notifications as { channel: string; outcome: string; error?: string }[];
    expect(notes.find((n) => n.channel === 'ops-mail')?.outcome).toBe('delivered');
    expect(notes.find((n) => n.channel === 'hung-mail')).toMatchObject({ outcome: 'pending' });
    expect(notes.find((n) => n.channel === 'hung-mail')?.error).toMatch(/timed out|timeout/i);
    const status = await hvAsync(w, ['status']);
    expect(status.stdout).toMatch(/Notify hung-mail: 1 retrying/);

    // The server comes back on the same port: the kept delivery goes out, once.
    await hung.close();
    closers.pop();
    const back = await sink(hung.port);
    const retry = await hvAsync(w, ['notify', 'retry']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(back.mails).toHaveLength(1);
    expect(back.mails[0]?.mail.subject).toMatch(/^\[hv01\] NixOS update available/);
    expect(good.mails).toHaveLength(1);
  });

  it('killed (-9) while a delivery is pending: after a restart it is delivered, the completed one is not sent again', async () => {
    const fast = await sink();
    const slow = await sink();
    slow.stall = true;
    const w = worldWith(
      [emailChannel('fast-mail', fast.port), emailChannel('slow-mail', slow.port, { timeoutSec: 60 })],
      { backoffSec: 0.5 },
    );
    w.upstream.advance('nixos-24.05');
    const child = w.hvSpawn(['check-updates']);
    const until = Date.now() + 60_000;
    // Wait until the fast delivery is recorded as done and the slow one is mid-attempt.
    for (;;) {
      if (Date.now() > until) throw new Error('deliveries did not start');
      const done = (() => {
        try {
          return outbox(w).some((d) => d.channel === 'fast-mail' && d.state === 'done');
        } catch {
          return false;
        }
      })();
      if (done && slow.connections > 0) break;
      await sleep(50);
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(fast.mails).toHaveLength(1);
    expect(slow.mails).toHaveLength(0);
    // Every record on disk is whole.
    const records = outbox(w);
    expect(records.find((d) => d.channel === 'slow-mail')).toMatchObject({ state: 'pending', attempts: 1 });
    slow.stall = false;

    // Restart: the next run picks up what was pending, and does not announce the update again.
    await sleep(1100);
    const r = await hvAsync(w, ['check-updates', '--json']);
    expect(r.code, r.stderr).toBe(100);
    expect(slow.mails).toHaveLength(1);
    expect(fast.mails).toHaveLength(1);
    expect(w.wallMessages()).toHaveLength(1);
    expect(outbox(w).every((d) => d.state === 'done')).toBe(true);
    await sleep(200);
    expect(slow.mails).toHaveLength(1);
  });
});
