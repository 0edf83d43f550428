import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promptMessage } from '../../adapters/discord/render.js';
import { channelTypes } from '../../adapters/registry.js';
import { confirmMessage } from '../../adapters/slack/blocks.js';
import { commandRegistry } from '../../commands/index.js';
import type { AuditRecord } from '../../src/audit.js';
import { createCommandBus, type HostedCommandBus } from '../../src/bus/bus.js';
import type { ConfirmationPrompt } from '../../src/bus/types.js';
import { parseConfig } from '../../src/config/load.js';
import { createServices } from '../../src/services.js';
import { auditRecords, chatRequest, sandboxConfig } from '../fixtures/chat.js';
import { RecordingReply } from './recording-reply.js';

const ADMIN = { channel: 'slack' as const, id: 'T1:UADMIN', display: 'ada' };
const OPERATOR = { channel: 'slack' as const, id: 'T1:UOP' };

let dir: string;
let buses: HostedCommandBus[] = [];

function setup() {
  const raw = sandboxConfig(dir, {
    chatops: { roles: { 'slack:T1:UADMIN': 'admin', 'slack:T1:UOP': 'operator' } },
  });
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const services = createServices(parseConfig(raw, channelTypes), { channels: channelTypes });
  const bus = createCommandBus(services, { ...commandRegistry, configPath, pollMs: 50 });
  buses.push(bus);
  return { bus, services };
}

const req = chatRequest;

const audit = (): AuditRecord[] => auditRecords(join(dir, 'state', 'audit.jsonl'));

/** A system "toplevel" that reports `version`, and profile generations pointing at such systems. */
function system(name: string, version: string): string {
  const top = join(dir, 'store', name);
  mkdirSync(top, { recursive: true });
  writeFileSync(join(top, 'nixos-version'), version);
  return top;
}
function profile(generations: Record<number, string>, current: number): void {
  const profiles = join(dir, 'profiles');
  mkdirSync(profiles, { recursive: true });
  for (const [n, top] of Object.entries(generations)) symlinkSync(top, join(profiles, `system-${n}-link`));
  symlinkSync(`system-${current}-link`, join(profiles, 'system'));
}

const REV_OLD = 'a'.repeat(40);
const REV_NEW = 'b'.repeat(40);

/** A PASSED result on disk, complete as upgrade-test writes it (hv reads it through its schema). */
function passedResult(fields: Record<string, unknown>): void {
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(
    join(dir, 'state', 'upgrade-test-result.json'),
    JSON.stringify({
      status: 'passed',
      host: 'hv01',
      startedAt: '2026-01-10T09:00:00.000Z',
      finishedAt: '2026-01-10T09:05:00.000Z',
      input: 'nixpkgs',
      oldRev: REV_OLD,
      newRev: REV_NEW,
      previousGeneration: 1,
      liveLockSha256: 'c'.repeat(64),
      stagingInputsHash: 'd'.repeat(64),
      stagingFiles: {},
      stagingDir: join(dir, 'state', 'staging', 'x'),
      checks: [],
      reverted: false,
      rebootRequired: false,
      rebootParts: [],
      downgradeAllowed: false,
      log: join(dir, 'log', 'upgrade-test.log'),
      ...fields,
    }),
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hv-bus-dg-'));
});
afterEach(async () => {
  for (const b of buses) await b.stop();
  buses = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('command bus: roles for arguments', () => {
  it("refuses an operator's upgrade-test --allow-downgrade, naming the flag and the role, and audits it as denied; a plain upgrade-test runs", async () => {
    const { bus } = setup();
    const reply = new RecordingReply();
    const out = await bus.submit(req(OPERATOR, 'upgrade-test --allow-downgrade'), reply);
    expect(out.kind).toBe('refused');
    expect(reply.refusals).toHaveLength(1);
    expect(reply.refusals[0]).toMatch(/not authorised/);
    expect(reply.refusals[0]).toContain('--allow-downgrade');
    expect(reply.refusals[0]).toMatch(/needs the admin role \(you have operator\)/);
    await bus.idle();
    expect(reply.results).toEqual([]);
    expect(bus.store.unreported()).toEqual([]);
    const denied = audit().at(-1);
    expect(denied).toMatchObject({ actor: OPERATOR, operation: 'upgrade-test', result: 'denied' });
    expect(denied?.args).toEqual({ argv: ['--allow-downgrade'] });
    expect(denied?.details).toMatchObject({ reason: '--allow-downgrade needs admin, has operator' });

    const plain = new RecordingReply();
    expect((await bus.submit(req(OPERATOR, 'upgrade-test'), plain)).kind).toBe('accepted');
    await bus.idle();
    expect(plain.refusals).toEqual([]);
    expect(plain.results).toHaveLength(1);
    const allowed = audit().find((a) => a.actor.id === OPERATOR.id && a.result === 'allowed');
    expect(allowed).toMatchObject({ operation: 'upgrade-test', args: { allowDowngrade: false } });
  });

  it("accepts an admin's upgrade-test --allow-downgrade and audits it with the flag", async () => {
    const { bus } = setup();
    const reply = new RecordingReply();
    expect((await bus.submit(req(ADMIN, 'upgrade-test --allow-downgrade'), reply)).kind).toBe('accepted');
    await bus.idle();
    expect(reply.refusals).toEqual([]);
    expect(reply.results).toHaveLength(1);
    const allowed = audit().find((a) => a.result === 'allowed');
    expect(allowed).toMatchObject({
      actor: ADMIN,
      operation: 'upgrade-test',
      args: { allowDowngrade: true },
      details: { role: 'admin', argRole: 'admin', for: '--allow-downgrade' },
    });
    // The run itself is audited with the flag too (its outcome record).
    expect(
      audit().some(
        (a) => a.operation === 'upgrade-test' && a.result !== 'allowed' && a.args?.allowDowngrade === true,
      ),
    ).toBe(true);
  });
});

describe('command bus: confirmation prompts say what will change', () => {
  it('system-upgrade of a PASSED downgrade: the prompt says DOWNGRADE, old → new version and revision, and the generations', async () => {
    const old = system('aaa-nixos-system-hv01-24.11.3', '24.11.3');
    const tested = system('bbb-nixos-system-hv01-24.05.9', '24.05.9');
    profile({ 1: old }, 1);
    passedResult({
      toplevel: tested,
      version: '24.05.9',
      previousSystem: old,
      downgradeAllowed: true,
      downgrade: {
        fromVersion: '24.11.3',
        toVersion: '24.05.9',
        fromRev: REV_OLD,
        toRev: REV_NEW,
        fromRelease: '24.11',
        toRelease: '24.05',
        reasons: ['the new system is NixOS 24.05.9, a lower release than the running 24.11.3'],
      },
    });
    const { bus } = setup();
    const reply = new RecordingReply();
    const out = await bus.submit(req(ADMIN, 'system-upgrade'), reply);
    expect(out.kind).toBe('needs-confirmation');
    const text = reply.prompts[0]?.text ?? '';
    expect(text).toContain('DOWNGRADE: 24.11.3 → 24.05.9 (nixpkgs aaaaaaaaaaaa → bbbbbbbbbbbb)');
    expect(text).toContain('generation 1 → new generation 2; 24.11.3 → 24.05.9');
    expect(text).toContain('lower release than the running 24.11.3');
    // DOWNGRADE comes before anything a chat limit could cut.
    expect(text.indexOf('DOWNGRADE')).toBeLessThan(text.indexOf('Will change'));
    expect(text.length).toBeLessThan(2900);
    // What Slack and Discord show of that prompt.
    const slack = confirmMessage(reply.prompts[0] as ConfirmationPrompt);
    const section = (slack.blocks[0] as { text: { text: string } }).text.text;
    expect(section).toContain('DOWNGRADE: 24.11.3 → 24.05.9 (nixpkgs aaaaaaaaaaaa → bbbbbbbbbbbb)');
    expect(section).toContain('generation 1 → new generation 2');
    const discord = promptMessage(reply.prompts[0] as ConfirmationPrompt);
    expect(discord.embeds?.[0]?.description).toContain(
      'DOWNGRADE: 24.11.3 → 24.05.9 (nixpkgs aaaaaaaaaaaa → bbbbbbbbbbbb)',
    );
    expect(discord.embeds?.[0]?.description).toContain('generation 1 → new generation 2');
  });

  it('a PASSED result written before downgrades were marked (only downgradeAllowed) still says DOWNGRADE', async () => {
    const old = system('aaa-nixos-system-hv01-24.11.3', '24.11.3');
    const tested = system('bbb-nixos-system-hv01-24.05.9', '24.05.9');
    profile({ 1: old }, 1);
    passedResult({ toplevel: tested, version: '24.05.9', previousSystem: old, downgradeAllowed: true });
    const { bus } = setup();
    const reply = new RecordingReply();
    await bus.submit(req(ADMIN, 'system-upgrade'), reply);
    expect(reply.prompts[0]?.text).toContain(
      'DOWNGRADE: 24.11.3 → 24.05.9 (nixpkgs aaaaaaaaaaaa → bbbbbbbbbbbb)',
    );
  });

  it('refuses the confirmation when what will change is no longer what the prompt said', async () => {
    const old = system('aaa-nixos-system-hv01-24.05.2', '24.05.2');
    const tested = system('bbb-nixos-system-hv01-24.05.3', '24.05.3');
    profile({ 1: old }, 1);
    passedResult({ toplevel: tested, version: '24.05.3', previousSystem: old });
    const { bus } = setup();
    const reply = new RecordingReply();
    await bus.submit(req(ADMIN, 'system-upgrade'), reply);
    const prompt = reply.prompts[0];
    expect(prompt?.text).toContain('generation 1 → new generation 2; 24.05.2 → 24.05.3');
    expect(prompt?.text).not.toContain('DOWNGRADE');
    // Meanwhile another test passed: a downgrade.
    const lower = system('ccc-nixos-system-hv01-23.11.9', '23.11.9');
    passedResult({
      toplevel: lower,
      version: '23.11.9',
      previousSystem: old,
      downgradeAllowed: true,
      downgrade: {
        fromVersion: '24.05.2',
        toVersion: '23.11.9',
        fromRev: REV_OLD,
        toRev: REV_NEW,
        reasons: [],
      },
    });
    const click = new RecordingReply();
    const out = await bus.confirm(prompt?.token as string, ADMIN, click);
    expect(out.kind).toBe('refused');
    expect(click.refusals[0]).toMatch(/no longer what the prompt said/);
    expect(click.refusals[0]).toContain('DOWNGRADE: 24.05.2 → 23.11.9');
    await bus.idle();
    expect(click.results).toEqual([]);
    expect(audit().at(-1)).toMatchObject({ operation: 'system-upgrade', result: 'denied' });
  });

  it('rollback: the prompt names the current and the target generation with version and revision', async () => {
    const g1 = system('aaa-nixos-system-hv01-24.05.2', '24.05.2');
    const g2 = system('bbb-nixos-system-hv01-24.05.3', '24.05.3');
    const g3 = system('ccc-nixos-system-hv01-24.05.4', '24.05.4');
    profile({ 1: g1, 2: g2, 3: g3 }, 3);
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(
      join(dir, 'state', 'last-upgrade.json'),
      // A complete record, as system-upgrade writes it: the preview reads it through its schema.
      JSON.stringify({
        status: 'applied',
        startedAt: '2026-01-01T00:00:00.000Z',
        by: 'root',
        operation: 'switch',
        previousGeneration: 2,
        newGeneration: 3,
        toplevel: g3,
        input: 'nixpkgs',
        oldRev: REV_OLD,
        newRev: REV_NEW,
        testStartedAt: '2026-01-01T00:00:00.000Z',
        backupDir: join(dir, 'state', 'backups', 'none'),
        rebootRequired: false,
        rebootParts: [],
      }),
    );
    const { bus } = setup();
    const reply = new RecordingReply();
    await bus.submit(req(ADMIN, 'rollback'), reply);
    expect(reply.prompts[0]?.text).toContain(
      'Will change: generation 3 (24.05.4, nixpkgs bbbbbbbbbbbb) → generation 2 (24.05.3, nixpkgs aaaaaaaaaaaa).',
    );
    const to = new RecordingReply();
    await bus.submit(req(ADMIN, 'rollback --to 1'), to);
    expect(to.prompts[0]?.text).toContain(
      'Will change: generation 3 (24.05.4, nixpkgs bbbbbbbbbbbb) → generation 1 (24.05.2).',
    );
    const missing = new RecordingReply();
    await bus.submit(req(ADMIN, 'rollback --to 7'), missing);
    expect(missing.prompts[0]?.text).toMatch(/Generation 7 .* does not exist: rollback will refuse/);
  });
});
