import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type HvRun, hvBin, World } from './fixtures/world.js';
import { emailChannel, hvAsync, MailSink } from './notify/smtp.js';

// Tests run as root; "another user" is nobody.
const NOBODY = 65534;

let world: World | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  world?.cleanup();
  world = undefined;
});

function newWorld(): World {
  world = new World({ branches: ['nixos-24.05'] });
  return world;
}

/** `hv <args>` started from a shell whose umask is 000 (what a careless caller hands hv). */
function hvUmask000(w: World, args: string[]): HvRun {
  const r = spawnSync(
    'sh',
    ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, hvBin, ...args, '--config', w.configPath],
    { encoding: 'utf8', timeout: 180_000 },
  );
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: undefined };
}

/** Every path under `root` (root included) that group or others can write; symlinks are skipped (lstat mode 0777 means nothing). */
function groupOrWorldWritable(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.mode & 0o022) out.push(`${p} ${(st.mode & 0o7777).toString(8)}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  if (existsSync(root)) walk(root);
  return out;
}

const mode = (p: string) => statSync(p).mode & 0o7777;

describe('file permissions under a hostile umask', () => {
  it('under umask 000, check-updates, upgrade-test and system-upgrade create nothing group- or world-writable; the login notice stays readable', () => {
    const w = newWorld();
    // Let hv create its own dirs (the fixture made them with the test's umask).
    const motdDir = join(w.root, 'motd.d');
    for (const d of [w.paths.state, w.paths.log, join(w.root, 'gcroots'), motdDir])
      rmSync(d, { recursive: true, force: true });
    w.upstream.advance('nixos-24.05');

    const c = hvUmask000(w, ['check-updates']);
    expect(c.code, c.stderr).toBe(100);
    // Login shows the notice to every user: a world-readable file in a world-readable dir, root's only.
    expect(mode(w.paths.motd)).toBe(0o644);
    expect(mode(motdDir)).toBe(0o755);
    expect(mode(w.paths.state)).toBe(0o700);
    expect(mode(w.paths.log)).toBe(0o700);
    const motdAfterCheck = groupOrWorldWritable(motdDir);

    const t = hvUmask000(w, ['upgrade-test']);
    expect(t.code, t.stderr).toBe(0);
    expect(mode(w.paths.testJson)).toBe(0o600);
    const activationsBefore = w.activations().length;
    const u = hvUmask000(w, ['system-upgrade', '--yes']);
    expect(u.code, u.stderr + u.stdout).toBe(0);
    expect(w.activations().length).toBeGreaterThan(activationsBefore);

    const backups = join(w.paths.state, 'backups');
    expect(readdirSync(backups).length).toBeGreaterThan(0);
    expect(readdirSync(join(w.root, 'gcroots')).length).toBeGreaterThan(0);
    expect(motdAfterCheck).toEqual([]);
    for (const root of [w.paths.state, w.paths.log, join(w.root, 'gcroots'), backups, motdDir])
      expect(groupOrWorldWritable(root), root).toEqual([]);
    // The live lock keeps the mode it had (0644 from the fixture), readable as before.
    expect(mode(join(w.flakeDir, 'flake.lock'))).toBe(0o644);
  });
});

describe('files another user could have written are refused (exit 2, naming the path and the fix)', () => {
  it('a state dir writable by others, or a symlink owned by another user in its place: every command refuses, even status', () => {
    const w = newWorld();
    expect(w.hv(['status']).code).toBe(0);
    chmodSync(w.paths.state, 0o777);
    const s = w.hv(['status']);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(`state dir ${w.paths.state}: writable by group or others (mode 0777)`);
    expect(s.stderr).toContain(`chmod go-w ${w.paths.state}`);
    const c = w.hv(['check-updates']);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain(w.paths.state);
    chmodSync(w.paths.state, 0o700);
    expect(w.hv(['status']).code).toBe(0);

    // Another user's symlink in place of the state dir, pointing at a dir of theirs.
    const theirs = join(w.root, 'theirs');
    renameSync(w.paths.state, theirs);
    chownSync(theirs, NOBODY, NOBODY);
    symlinkSync(theirs, w.paths.state);
    lchownSync(w.paths.state, NOBODY, NOBODY);
    const l = w.hv(['status']);
    expect(l.code).toBe(2);
    expect(l.stderr).toContain(`state dir ${w.paths.state}: a symlink owned by uid ${NOBODY}`);
  });

  it('a parent of the state dir that others can write is refused; a sticky one (like /tmp) is fine', () => {
    const w = newWorld();
    chmodSync(w.root, 0o777);
    const r = w.hv(['status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`parent dir ${w.root}: writable by group or others (mode 0777)`);
    chmodSync(w.root, 0o1777);
    expect(w.hv(['status']).code).toBe(0);
  });

  it('a log dir owned by another user, or a log file that is their symlink, is refused', () => {
    const w = newWorld();
    chownSync(w.paths.log, NOBODY, NOBODY);
    const r = w.hv(['check-updates']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`log dir ${w.paths.log}: owned by uid ${NOBODY} (must be root)`);
    expect(r.stderr).toContain(`chown root:root ${w.paths.log}`);
    chownSync(w.paths.log, 0, 0);
    // A symlink planted under a log name: root appending to it would write wherever it points.
    const victim = join(w.root, 'victim');
    writeFileSync(victim, 'keep\n', { mode: 0o600 });
    const link = join(w.paths.log, 'update-checker.log');
    symlinkSync(victim, link);
    lchownSync(link, NOBODY, NOBODY);
    const l = w.hv(['check-updates']);
    expect(l.code).toBe(2);
    expect(l.stderr).toContain(`log dir entry ${link}: a symlink owned by uid ${NOBODY}`);
    expect(w.read(victim)).toBe('keep\n');
  });

  it('an upgrade-test-result.json writable by others or owned by another user: system-upgrade refuses and activates nothing; once fixed it applies', () => {
    const w = newWorld();
    w.upstream.advance('nixos-24.05');
    const t = w.hv(['upgrade-test']);
    expect(t.code, t.stderr).toBe(0);
    const before = w.activations();

    chmodSync(w.paths.testJson, 0o666);
    const writable = w.hv(['system-upgrade', '--yes']);
    expect(writable.code).toBe(2);
    expect(writable.stderr).toContain(
      `state dir entry ${w.paths.testJson}: writable by group or others (mode 0666); fix: chmod go-w ${w.paths.testJson}`,
    );
    expect(w.activations()).toEqual(before);

    chmodSync(w.paths.testJson, 0o600);
    chownSync(w.paths.testJson, NOBODY, NOBODY);
    const owned = w.hv(['system-upgrade', '--yes']);
    expect(owned.code).toBe(2);
    expect(owned.stderr).toContain(`${w.paths.testJson}: owned by uid ${NOBODY} (must be root)`);
    expect(owned.stderr).toContain(`chown root:root ${w.paths.testJson}`);
    expect(w.activations()).toEqual(before);
    // status reads the result too: it refuses rather than report what another user wrote.
    expect(w.hv(['status']).code).toBe(2);

    chownSync(w.paths.testJson, 0, 0);
    const ok = w.hv(['system-upgrade', '--yes']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(w.activations().length).toBeGreaterThan(before.length);
  });

  it('a config file owned by another user, or writable by others, is refused', () => {
    const w = newWorld();
    chownSync(w.configPath, NOBODY, NOBODY);
    const owned = w.hv(['status']);
    expect(owned.code).toBe(2);
    expect(owned.stderr).toContain(`config file ${w.configPath}: owned by uid ${NOBODY} (must be root)`);
    chownSync(w.configPath, 0, 0);
    chmodSync(w.configPath, 0o666);
    const writable = w.hv(['check-updates']);
    expect(writable.code).toBe(2);
    expect(writable.stderr).toContain(
      `config file ${w.configPath}: writable by group or others (mode 0666); fix: chmod go-w ${w.configPath}`,
    );
    chmodSync(w.configPath, 0o644);
    expect(w.hv(['status']).code).toBe(0);
  });
});

describe('secret files', () => {
  async function mailWorld(): Promise<{ w: World; mail: MailSink; secret: string }> {
    const mail = await MailSink.start();
    closers.push(() => mail.close());
    const w = newWorld();
    const secret = join(w.root, 'smtp-password');
    writeFileSync(secret, 's3cret-pass\n', { mode: 0o600 });
    w.config.notify = {
      channels: [
        emailChannel('ops-mail', mail.port, {
          smtp: { host: '127.0.0.1', port: mail.port, secure: false, user: 'hv', passwordFile: secret },
        }),
      ],
    };
    w.writeConfig();
    return { w, mail, secret };
  }

  it('a secret owned by another user, or writable by others, is refused before anything is sent', async () => {
    const { w, mail, secret } = await mailWorld();
    chownSync(secret, NOBODY, NOBODY);
    const owned = await hvAsync(w, ['notify', 'test']);
    expect(owned.code).toBe(2);
    expect(owned.stderr).toContain(`secret file ${secret}: owned by uid ${NOBODY} (must be root)`);
    chownSync(secret, 0, 0);
    chmodSync(secret, 0o622);
    const writable = await hvAsync(w, ['notify', 'test']);
    expect(writable.code).toBe(2);
    expect(writable.stderr).toContain(`secret file ${secret}: writable by group or others (mode 0622)`);
    expect(mail.mails).toHaveLength(0);
  });

  it('a world-readable secret is used, with a warning naming it', async () => {
    const { w, mail, secret } = await mailWorld();
    chmodSync(secret, 0o644);
    const r = await hvAsync(w, ['notify', 'test']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stderr).toContain('secret file is readable by group or others');
    expect(r.stderr).toContain(secret);
    expect(r.stderr.match(/secret file is readable/g)).toHaveLength(1);
    expect(mail.mails).toHaveLength(1);
    expect(mail.mails[0]?.password).toBe('s3cret-pass');

    chmodSync(secret, 0o600);
    const quiet = await hvAsync(w, ['notify', 'test']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toContain('secret file');
  });
});
