import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../adapters/registry.js';
import { commandRegistry } from '../commands/index.js';
import type { AuditRecord } from '../src/audit.js';
import { createCommandBus, type HostedCommandBus } from '../src/bus/bus.js';
import { parseConfig } from '../src/config/load.js';
import { createServices } from '../src/services.js';
import { RecordingReply } from './bus/recording-reply.js';
import { chatRequest, sandboxConfig } from './fixtures/chat.js';
import { hvBin, World } from './fixtures/world.js';

let world: World | undefined;
let bus: HostedCommandBus | undefined;
afterEach(async () => {
  await bus?.stop();
  bus = undefined;
  world?.cleanup();
  world = undefined;
});

const ADMIN = { channel: 'slack' as const, id: 'T1:UADMIN', display: 'ada' };
const OPERATOR = { channel: 'slack' as const, id: 'T1:UOP' };

const req = chatRequest;

const auditOf = (w: World): AuditRecord[] =>
  w
    .read(w.paths.audit)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);

const short = (rev: string) => rev.slice(0, 12);

describe('downgrades on a real Nix: chat roles, marked result, DOWNGRADE in prompts, output and notifications', () => {
  it('a host on 24.11 made to track 24.05: refused to an operator in chat, tested by an admin, confirmed and applied saying DOWNGRADE; rolled back naming the generations; applied again from the CLI saying DOWNGRADE', async () => {
    world = new World({
      branches: ['nixos-24.11', 'nixos-24.05'],
      config: { chatops: { roles: { 'slack:T1:UADMIN': 'admin', 'slack:T1:UOP': 'operator' } } },
    });
    const w = world;
    const rev2411 = w.upstream.rev('nixos-24.11');
    const rev2405 = w.upstream.rev('nixos-24.05');
    const flakeNix = join(w.flakeDir, 'flake.nix');
    writeFileSync(flakeNix, w.read(flakeNix).replace('ref=nixos-24.11', 'ref=nixos-24.05'));
    bus = createCommandBus(createServices(parseConfig(w.config, channelTypes), { channels: channelTypes }), {
      ...commandRegistry,
      configPath: w.configPath,
      pollMs: 100,
    });

    // An operator may test, but not a downgrade.
    const op = new RecordingReply();
    expect((await bus.submit(req(OPERATOR, 'upgrade-test --allow-downgrade'), op)).kind).toBe('refused');
    expect(op.refusals[0]).toMatch(/"upgrade-test --allow-downgrade" needs the admin role/);
    expect(w.activations()).toEqual([]);
    expect(auditOf(w).at(-1)).toMatchObject({
      actor: OPERATOR,
      operation: 'upgrade-test',
      result: 'denied',
      args: { argv: ['--allow-downgrade'] },
    });

    // An admin's runs (detached, through the real engine) and the result is marked.
    const test = new RecordingReply();
    expect((await bus.submit(req(ADMIN, 'upgrade-test --allow-downgrade'), test)).kind).toBe('accepted');
    await bus.idle();
    const passed = test.results[0];
    expect(passed?.exitCode, passed?.message).toBe(0);
    const line = `DOWNGRADE: 24.11.1 → 24.05.1 (nixpkgs ${short(rev2411)} → ${short(rev2405)})`;
    expect(passed?.message).toContain(line);
    expect(passed?.data.downgrade).toMatchObject({
      fromVersion: '24.11.1',
      toVersion: '24.05.1',
      fromRev: rev2411,
      toRev: rev2405,
      fromRelease: '24.11',
      toRelease: '24.05',
    });
    expect(w.read(w.paths.testText)).toContain(`${line}, allowed with --allow-downgrade`);
    const adminAudit = auditOf(w).filter((a) => a.actor.id === ADMIN.id);
    expect(adminAudit.map((a) => [a.operation, a.result, a.args?.allowDowngrade])).toEqual([
      ['upgrade-test', 'allowed', true],
      ['upgrade-test', 'downgrade-allowed', true],
      ['upgrade-test', 'passed', true],
    ]);
    expect(w.wallMessages().at(-1)).toContain(`Upgrade test PASSED on hv01: ${line}`);

    // The chat prompt says DOWNGRADE and the generations; the confirmed run says it too.
    const up = new RecordingReply();
    expect((await bus.submit(req(ADMIN, 'system-upgrade'), up)).kind).toBe('needs-confirmation');
    const prompt = up.prompts[0];
    expect(prompt?.text).toContain(`${line}.`);
    expect(prompt?.text).toContain('Will change: generation 1 → new generation 2; 24.11.1 → 24.05.1;');
    expect((await bus.confirm(prompt?.token as string, ADMIN, up)).kind).toBe('accepted');
    await bus.idle();
    const applied = up.results[0];
    expect(applied?.exitCode, applied?.message).toBe(0);
    expect(applied?.message.split('\n')[0]).toBe(`${line} was applied.`);
    const wall = w.wallMessages().at(-1) ?? '';
    expect(wall).toContain(`System upgrade applied on hv01: ${line} (generation 1 → 2)`);
    const outcome = auditOf(w).findLast((a) => a.operation === 'system-upgrade');
    expect(outcome).toMatchObject({
      result: 'applied',
      details: {
        fromGeneration: 1,
        toGeneration: 2,
        downgrade: { fromVersion: '24.11.1', toVersion: '24.05.1', fromRev: rev2411, toRev: rev2405 },
      },
    });

    // Rolling back: the terminal prompt (--yes prints it) names current → target generation.
    const back = w.hv(['rollback', '--yes']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stderr).toContain('hv: running "hv rollback" on hv01 (confirmed with --yes):');
    expect(back.stderr).toContain(
      `Will change: generation 2 (24.05.1, nixpkgs ${short(rev2405)}) → generation 1 (24.11.1, nixpkgs ${short(rev2411)}).`,
    );

    // From the CLI: test again, then system-upgrade --yes says DOWNGRADE before and after.
    const again = w.hv(['upgrade-test', '--allow-downgrade', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json.downgrade.toVersion).toBe('24.05.1');
    const cli = w.hv(['system-upgrade', '--yes']);
    expect(cli.code, cli.stderr + cli.stdout).toBe(0);
    const [before, after] = [cli.stderr, cli.stdout];
    expect(before).toContain(`  ${line}.`);
    // nix-env --set reuses the newest generation when it holds the same system: the prompt says so.
    expect(before).toContain(
      'Will change: generation 1 → generation 2 (it holds this system already); 24.11.1 → 24.05.1;',
    );
    expect(after.split('\n')[0]).toBe(`${line} was applied.`);
    expect(w.wallMessages()).toHaveLength(5);
    expect(w.wallMessages().at(-1)).toContain(`System upgrade applied on hv01: ${line} (generation 1 → 2)`);
  }, 240_000);
});

describe('the terminal prompt says what will change before asking', () => {
  it('hv rollback on a terminal: current → target generation with version and revision, then "Really run …? [y/N]"; "n" changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hv-tty-'));
    try {
      for (const [name, version] of [
        ['a', '24.05.2'],
        ['b', '24.05.3'],
      ] as const) {
        mkdirSync(join(dir, 'store', name), { recursive: true });
        writeFileSync(join(dir, 'store', name, 'nixos-version'), version);
      }
      mkdirSync(join(dir, 'profiles'));
      symlinkSync(join(dir, 'store', 'a'), join(dir, 'profiles', 'system-1-link'));
      symlinkSync(join(dir, 'store', 'b'), join(dir, 'profiles', 'system-2-link'));
      symlinkSync('system-2-link', join(dir, 'profiles', 'system'));
      mkdirSync(join(dir, 'state'));
      writeFileSync(
        join(dir, 'state', 'last-upgrade.json'),
        JSON.stringify({
          status: 'applied',
          startedAt: '2026-11-01T10:00:00.000Z',
          finishedAt: '2026-11-01T10:01:00.000Z',
          by: 'root',
          operation: 'switch',
          previousGeneration: 1,
          previousSystem: join(dir, 'store', 'a'),
          newGeneration: 2,
          toplevel: join(dir, 'store', 'b'),
          input: 'nixpkgs',
          oldRev: 'a'.repeat(40),
          newRev: 'b'.repeat(40),
          testStartedAt: '2026-11-01T09:00:00.000Z',
          backupDir: join(dir, 'state', 'backups', 'x'),
          rebootRequired: false,
          rebootParts: [],
        }),
      );
      const config = join(dir, 'config.json');
      writeFileSync(config, JSON.stringify(sandboxConfig(dir)));
      // util-linux `script` gives the CLI a terminal, so that it asks.
      const r = spawnSync(
        'script',
        ['-qec', `${process.execPath} ${hvBin} rollback --config ${config}`, '/dev/null'],
        { input: 'n\n', encoding: 'utf8', timeout: 30_000 },
      );
      const out = r.stdout.replace(/\r/g, '');
      const told = out.indexOf(
        'Will change: generation 2 (24.05.3, nixpkgs bbbbbbbbbbbb) → generation 1 (24.05.2, nixpkgs aaaaaaaaaaaa).',
      );
      expect(told, out).toBeGreaterThan(out.indexOf('About to run "hv rollback" on hv01:'));
      expect(out.indexOf('Really run "hv rollback" on hv01? [y/N]')).toBeGreaterThan(told);
      expect(out).toContain('not confirmed; nothing was changed');
      expect(r.status).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
