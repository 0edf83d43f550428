import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { commandRegistry } from '../../commands/index.js';
import type { AuditRecord } from '../../src/audit.js';
import { createCommandBus, type HostedCommandBus } from '../../src/bus/bus.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createServices } from '../../src/services.js';
import { auditRecords, chatRequest } from '../fixtures/chat.js';
import { RecordingReply } from './recording-reply.js';

const ADMIN = { channel: 'slack' as const, id: 'T1:UADMIN', display: 'ada' };
const ADMIN2 = { channel: 'slack' as const, id: 'T1:UADMIN2', display: 'bob' };
const OPERATOR = { channel: 'slack' as const, id: 'T1:UOP' };
const VIEWER = { channel: 'slack' as const, id: 'T1:UVIEW' };
const STRANGER = { channel: 'slack' as const, id: 'T1:USTRANGER' };

let dir: string;
let t: number;
let buses: HostedCommandBus[] = [];

function setup(
  chatops: ConfigInput['chatops'] = {},
  busOpts: { spawnPrefix?: string[]; resultRetryMs?: number } = {},
) {
  const raw = {
    host: 'hv01',
    allowNonRoot: true,
    paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
    flake: { dir: join(dir, 'flake') },
    notify: { channels: [] },
    chatops: {
      roles: {
        'slack:T1:UADMIN': 'admin',
        'slack:T1:UADMIN2': 'admin',
        'slack:T1:UOP': 'operator',
        'slack:T1:UVIEW': 'viewer',
        'discord:role:999': 'operator',
        'email:Alice@Example.org': 'admin',
      },
      ...chatops,
    },
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const config = parseConfig(raw, channelTypes);
  const services = createServices(config, { channels: channelTypes, now: () => new Date(t) });
  const bus = createCommandBus(services, { ...commandRegistry, configPath, pollMs: 50, ...busOpts });
  buses.push(bus);
  return { bus, services, config };
}

const req = chatRequest;

const audit = (): AuditRecord[] => auditRecords(join(dir, 'state', 'audit.jsonl'));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hv-bus-'));
  t = Date.parse('2026-01-10T10:00:00Z');
});
afterEach(async () => {
  for (const b of buses) await b.stop();
  buses = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('command bus: authorisation', () => {
  it('denies an unknown identity with "not authorised", audits it, and runs nothing', async () => {
    const { bus } = setup();
    const reply = new RecordingReply();
    const out = await bus.submit(req(STRANGER, 'status'), reply);
    expect(out.kind).toBe('refused');
    expect(reply.refusals).toEqual(['not authorised.']);
    await bus.idle();
    expect(reply.results).toEqual([]);
    expect(bus.store.unreported()).toEqual([]);
    const rec = audit().at(-1);
    expect(rec).toMatchObject({ actor: STRANGER, operation: 'status', result: 'denied' });
    // The same words whether or not the command exists: nothing is revealed.
    const r2 = new RecordingReply();
    await bus.submit(req(STRANGER, 'no-such-command'), r2);
    const r3 = new RecordingReply();
    await bus.submit(req(STRANGER, 'system-upgrade'), r3);
    expect(r2.refusals).toEqual(reply.refusals);
    expect(r3.refusals).toEqual(reply.refusals);
  });

  it('a flood from unknown identities writes almost nothing: 300 requests, at most 30 audit lines and claims', async () => {
    const { bus } = setup({ ratePerMinute: 1 });
    const replies: RecordingReply[] = [];
    for (let i = 0; i < 300; i++) {
      const r = new RecordingReply();
      replies.push(r);
      await bus.submit(req({ channel: 'slack', id: `T1:UFLOOD${i % 50}` }, 'status'), r);
    }
    const denied = audit().filter((a) => a.result === 'denied');
    // One audited refusal per identity a minute (50 identities), capped at 30 in all.
    expect(denied.length).toBeLessThanOrEqual(30);
    expect(denied.length).toBeGreaterThan(0);
    const claims = readdirSync(join(dir, 'state', 'operations', 'requests'));
    expect(claims.length).toBeLessThanOrEqual(30);
    // Nobody unknown ever got anything but "not authorised." (or no answer past the total cap).
    expect(new Set(replies.flatMap((r) => r.refusals))).toEqual(new Set(['not authorised.']));
    expect(replies.flatMap((r) => r.results)).toEqual([]);
    // A known operator is still served at once.
    const ok = new RecordingReply();
    const out = await bus.submit(req(OPERATOR, 'help'), ok);
    expect(out.kind).toBe('accepted');
  });

  it('lets a viewer run status in-process; refuses upgrade-test to a viewer, naming the role', async () => {
    const { bus } = setup();
    const reply = new RecordingReply();
    expect((await bus.submit(req(VIEWER, 'status'), reply)).kind).toBe('accepted');
    await bus.idle();
    expect(reply.results).toHaveLength(1);
    expect(reply.results[0]?.message).toContain('Host:');
    const r2 = new RecordingReply();
    const out = await bus.submit(req(VIEWER, 'upgrade-test'), r2);
    expect(out).toMatchObject({ kind: 'refused' });
    expect(r2.refusals[0]).toMatch(/not authorised.*operator/);
    expect(audit().map((a) => [a.actor.id, a.operation, a.result])).toEqual([
      [VIEWER.id, 'status', 'allowed'],
      [VIEWER.id, 'upgrade-test', 'denied'],
    ]);
  });

  it('matches discord roles through actor.groups and email case-insensitively', async () => {
    const { bus } = setup();
    const d = new RecordingReply();
    await bus.submit(req({ channel: 'discord', id: 'user:42', groups: ['role:999'] }, 'help'), d);
    const e = new RecordingReply();
    await bus.submit(req({ channel: 'email', id: 'alice@example.org' }, 'help'), e);
    const n = new RecordingReply();
    await bus.submit(req({ channel: 'discord', id: 'user:42', groups: ['role:998'] }, 'help'), n);
    await bus.idle();
    expect(d.results).toHaveLength(1);
    expect(e.results).toHaveLength(1);
    expect(n.refusals).toEqual(['not authorised.']);
  });

  it('refuses CLI-only commands and invalid arguments from chat', async () => {
    const { bus } = setup();
    const a = new RecordingReply();
    expect((await bus.submit(req(ADMIN, 'audit --verify'), a)).kind).toBe('refused');
    expect(a.refusals[0]).toContain('only from the shell');
    const b = new RecordingReply();
    expect((await bus.submit(req(ADMIN, 'status --bogus'), b)).kind).toBe('refused');
    expect(b.refusals[0]).toContain('unknown option --bogus');
  });

  it('rate-limits per actor', async () => {
    const { bus } = setup({ ratePerMinute: 3 });
    const outs = [];
    for (let i = 0; i < 4; i++) outs.push((await bus.submit(req(VIEWER, 'help'), new RecordingReply())).kind);
    expect(outs).toEqual(['accepted', 'accepted', 'accepted', 'refused']);
    // Another actor is not affected; a minute later the first may go on.
    expect((await bus.submit(req(OPERATOR, 'help'), new RecordingReply())).kind).toBe('accepted');
    t += 61_000;
    expect((await bus.submit(req(VIEWER, 'help'), new RecordingReply())).kind).toBe('accepted');
    await bus.idle();
  });
});

describe('command bus: deduplication', () => {
  it('runs a request id once, also after a restart, and by any of its keys', async () => {
    const first = setup();
    const reply = new RecordingReply();
    const a = await first.bus.submit(req(VIEWER, 'help', 'slack:T1:trigger-1'), reply);
    expect(a.kind).toBe('accepted');
    const again = await first.bus.submit(req(VIEWER, 'help', 'slack:T1:trigger-1'), new RecordingReply());
    expect(again).toEqual({ kind: 'duplicate', operationId: (a as { operationId: string }).operationId });
    await first.bus.stop();
    const second = setup(); // a new daemon on the same state
    const after = await second.bus.submit(req(VIEWER, 'help', 'slack:T1:trigger-1'), new RecordingReply());
    expect(after.kind).toBe('duplicate');
    const other = { ...req(VIEWER, 'help', 'slack:T1:trigger-2'), dedupeKeys: ['slack-envelope:E1'] };
    expect((await second.bus.submit(other, new RecordingReply())).kind).toBe('accepted');
    const sameEnvelope = { ...req(VIEWER, 'help', 'slack:T1:trigger-3'), dedupeKeys: ['slack-envelope:E1'] };
    expect((await second.bus.submit(sameEnvelope, new RecordingReply())).kind).toBe('duplicate');
    await second.bus.idle();
    expect(audit().filter((r) => r.result === 'allowed')).toHaveLength(2);
  });
});

describe('command bus: confirmations', () => {
  it('asks for confirmation; non-admins and expired tokens are refused; nothing runs meanwhile', async () => {
    const { bus } = setup({ confirmTimeoutSec: 60 });
    const reply = new RecordingReply();
    const out = await bus.submit(req(ADMIN, 'rollback --to 3'), reply);
    expect(out.kind).toBe('needs-confirmation');
    expect(reply.prompts).toHaveLength(1);
    const token = reply.prompts[0]?.token as string;
    expect(bus.store.unreported()).toEqual([]);

    const byOperator = new RecordingReply();
    expect((await bus.confirm(token, OPERATOR, byOperator)).kind).toBe('refused');
    expect(byOperator.refusals[0]).toContain('not authorised');
    const byStranger = new RecordingReply();
    expect((await bus.confirm(token, STRANGER, byStranger)).kind).toBe('refused');
    expect(bus.store.unreported()).toEqual([]);

    t += 61_000;
    const late = new RecordingReply();
    expect((await bus.confirm(token, ADMIN, late)).kind).toBe('refused');
    expect(late.refusals[0]).toContain('expired');
    expect(bus.store.unreported()).toEqual([]);
    const denied = audit().filter((r) => r.result === 'denied');
    expect(denied.map((r) => r.actor.id)).toEqual([OPERATOR.id, STRANGER.id, ADMIN.id]);
  });

  it('with approvals = 2 needs a second, different admin; then runs once, detached, as the requester', async () => {
    const { bus } = setup({ approvals: { 'system-upgrade': 2 } });
    const reply = new RecordingReply({ channel: 'test', data: { thread: 'x' } });
    await bus.submit(req(ADMIN, 'system-upgrade'), reply);
    const token = reply.prompts[0]?.token as string;
    expect(reply.prompts[0]?.approvalsNeeded).toBe(2);

    const click1 = new RecordingReply();
    expect(await bus.confirm(token, ADMIN, click1)).toEqual({
      kind: 'awaiting-approval',
      approvalsNeeded: 1,
    });
    const click2 = new RecordingReply();
    expect((await bus.confirm(token, ADMIN, click2)).kind).toBe('awaiting-approval');
    expect(click2.refusals[0]).toContain('already approved');
    expect(bus.store.unreported()).toEqual([]);

    const click3 = new RecordingReply();
    const ok = await bus.confirm(token, ADMIN2, click3);
    expect(ok.kind).toBe('accepted');
    // A late click on the used token changes nothing.
    expect((await bus.confirm(token, ADMIN2, new RecordingReply())).kind).toBe('refused');
    await bus.idle();
    expect(click3.results).toHaveLength(1);
    // No tested system exists here: the safety gate refuses, in the child, on behalf of the requester.
    expect(click3.results[0]?.status).toBe('refused');
    const op = audit().filter((r) => r.operation === 'system-upgrade');
    expect(op.map((r) => [r.actor.id, r.result])).toEqual([
      [ADMIN.id, 'allowed'],
      [ADMIN.id, 'approved'],
      [ADMIN2.id, 'confirmed'],
      [ADMIN.id, 'refused'],
    ]);
  });
});

describe('command bus: restart', () => {
  it('delivers the result of an operation that finished while the daemon was down', async () => {
    const first = setup();
    const reply = new RecordingReply({ channel: 'test', data: { thread: 'T-1' } });
    const a = await first.bus.submit(req(ADMIN, 'rollback --to 1'), reply);
    const token = (a as { prompt: { token: string } }).prompt.token;
    const ok = await first.bus.confirm(token, ADMIN, reply);
    expect(ok.kind).toBe('accepted');
    // The daemon stops right away; the detached child goes on and writes its result.
    await first.bus.stop();
    const id = (ok as { operationId: string }).operationId;
    const deadline = Date.now() + 20_000;
    while (!first.bus.store.readResult(id) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    if (!first.bus.store.readResult(id)) console.log(readFileSync(first.bus.store.logPath(id), 'utf8'));
    expect(first.bus.store.readResult(id)).not.toBeNull();
    expect(reply.results).toEqual([]);

    const second = setup();
    const resumed: RecordingReply[] = [];
    const n = second.bus.resumePending((addr) => {
      const r = new RecordingReply(addr);
      resumed.push(r);
      return r;
    });
    expect(n).toBe(1);
    await second.bus.idle();
    expect(resumed[0]?.addr).toEqual({ channel: 'test', data: { thread: 'T-1' } });
    expect(resumed[0]?.results).toHaveLength(1);
    // Reported once: a further restart has nothing left to deliver.
    expect(setup().bus.resumePending(() => new RecordingReply())).toBe(0);
  });
});

describe('command bus: results while the platform is unreachable', () => {
  /** A rollback that finished while no daemon listened; its result waits to be delivered. */
  async function finishedUnreported() {
    const first = setup();
    const reply = new RecordingReply({ channel: 'test', data: { thread: 'T-2' } });
    const a = await first.bus.submit(req(ADMIN, 'rollback --to 1'), reply);
    const ok = await first.bus.confirm((a as { prompt: { token: string } }).prompt.token, ADMIN, reply);
    await first.bus.stop();
    const id = (ok as { operationId: string }).operationId;
    const deadline = Date.now() + 20_000;
    while (!first.bus.store.readResult(id) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(first.bus.store.readResult(id)).not.toBeNull();
    return id;
  }

  /** A reply whose result fails `failures` times with `error`, then goes through. */
  class FlakyReply extends RecordingReply {
    attempts = 0;
    constructor(
      private readonly failures: number,
      private readonly error: string,
    ) {
      super();
    }
    override async result(result: Parameters<RecordingReply['result']>[0]): Promise<void> {
      this.attempts += 1;
      if (this.attempts <= this.failures) throw new Error(this.error);
      await super.result(result);
    }
  }

  it('a host cut off from its chat platform: the result is retried past the usual 10 attempts and arrives once it is reachable', async () => {
    const id = await finishedUnreported();
    const { bus } = setup({}, { resultRetryMs: 2 });
    const reply = new FlakyReply(11, 'A request error occurred: fetch failed');
    expect(bus.resumePending(() => reply)).toBe(1);
    await bus.idle();
    expect(reply.attempts).toBe(12);
    expect(reply.results).toHaveLength(1);
    expect(bus.store.isReported(id)).toBe(true);
  });

  it('a platform that refuses the reply for good: given up after 10 attempts, marked reported', async () => {
    const id = await finishedUnreported();
    const { bus } = setup({}, { resultRetryMs: 2 });
    const reply = new FlakyReply(100, 'An API error occurred: channel_not_found');
    expect(bus.resumePending(() => reply)).toBe(1);
    await bus.idle();
    expect(reply.attempts).toBe(10);
    expect(reply.results).toEqual([]);
    expect(bus.store.isReported(id)).toBe(true);
  });
});

describe('command bus: detached operations', () => {
  it('runs the operation directly when the wrapper (systemd-run) cannot start', async () => {
    const { bus } = setup({}, { spawnPrefix: [join(dir, 'no-such-systemd-run'), '--unit=hv-{id}', '--'] });
    const reply = new RecordingReply();
    const a = await bus.submit(req(ADMIN, 'rollback --to 1'), reply);
    const token = (a as { prompt: { token: string } }).prompt.token;
    expect((await bus.confirm(token, ADMIN, reply)).kind).toBe('accepted');
    await bus.idle();
    expect(reply.results).toHaveLength(1);
    expect(reply.results[0]?.status).toBe('refused');
    expect(reply.steps.map((s) => s.step)).toContain('started');
  });

  it('substitutes {id} in the wrapper words', async () => {
    const { bus } = setup({}, { spawnPrefix: ['env', 'HV_WRAPPED={id}'] });
    const reply = new RecordingReply();
    const a = await bus.submit(req(ADMIN, 'rollback --to 1'), reply);
    const token = (a as { prompt: { token: string } }).prompt.token;
    const ok = await bus.confirm(token, ADMIN, reply);
    await bus.idle();
    expect(reply.results[0]?.status).toBe('refused');
    const id = (ok as { operationId: string }).operationId;
    expect(bus.store.load(id)?.pid).toBeGreaterThan(0);
  });
});

describe('command bus: cancel', () => {
  it('the requester or an admin may cancel; anyone else is refused; a cancelled token cannot be confirmed', async () => {
    const { bus } = setup();
    const reply = new RecordingReply();
    await bus.submit(req(ADMIN, 'system-upgrade'), reply);
    const token = reply.prompts[0]?.token as string;
    const byOperator = new RecordingReply();
    await bus.cancel(token, OPERATOR, byOperator);
    expect(byOperator.refusals[0]).toContain('not authorised');
    const byAdmin = new RecordingReply();
    await bus.cancel(token, ADMIN2, byAdmin);
    expect(byAdmin.refusals).toEqual([]);
    const late = new RecordingReply();
    expect((await bus.confirm(token, ADMIN, late)).kind).toBe('refused');
    expect(bus.store.unreported()).toEqual([]);
    expect(
      audit()
        .filter((r) => r.operation === 'system-upgrade')
        .map((r) => [r.actor.id, r.result]),
    ).toEqual([
      [ADMIN.id, 'allowed'],
      [OPERATOR.id, 'denied'],
      [ADMIN2.id, 'cancelled'],
    ]);
    // The click on the used token is audited as a denied confirmation.
    expect(audit().at(-1)).toMatchObject({ actor: ADMIN, operation: 'confirm', result: 'denied' });
  });
});
