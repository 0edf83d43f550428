import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type OperationRecord, OperationStore, type PendingConfirmation } from '../../src/bus/operations.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(): OperationStore {
  const state = mkdtempSync(join(tmpdir(), 'hv-ops-'));
  dirs.push(state);
  return new OperationStore(state);
}

const actor = { channel: 'slack', id: 'T1:U1', display: 'alice' };
const rec = (id: string): OperationRecord => ({
  id,
  requestId: `req-${id}`,
  command: 'status',
  argv: [],
  args: {},
  actor,
  replyTo: { channel: 'slack', data: { channel: 'C1' } },
  confirmed: false,
  mode: 'child',
  createdAt: new Date().toISOString(),
});

describe('OperationStore reads its files through schemas', () => {
  it('a damaged operation record: load names it; unreported skips it and reports it; the file stays', () => {
    const s = store();
    s.save(rec('op1'));
    const file = join(s.dir, 'op2.json');
    writeFileSync(file, JSON.stringify({ ...rec('op2'), mode: 'detached' }));
    expect(s.load('nope')).toBeNull();
    expect(() => s.load('op2')).toThrow(/operation record \S*op2\.json is not a valid record \(mode: /);
    const broken: string[] = [];
    expect(s.unreported((m) => broken.push(m)).map((r) => r.id)).toEqual(['op1']);
    expect(broken).toHaveLength(1);
    expect(broken[0]).toContain(file);
    expect(readdirSync(s.dir)).toContain('op2.json');
  });

  it('a damaged result: an error result naming the file, so the requester is told; only a missing one is null', () => {
    const s = store();
    expect(s.readResult('op1')).toBeNull();
    writeFileSync(join(s.dir, 'op1.result.json'), '{"status": "applied", "exitCode": 0, "mess');
    const r = s.readResult('op1');
    expect(r?.status).toBe('error');
    expect(r?.exitCode).toBe(1);
    expect(r?.message).toMatch(
      /outcome of this operation is unknown: the operation result \S*op1\.result\.json is not valid JSON/,
    );
    s.writeResult('op1', { status: 'applied', exitCode: 0, message: 'done', data: {} });
    expect(s.readResult('op1')?.status).toBe('applied');
  });

  it('progress lines that are not progress lines are skipped (display only)', () => {
    const s = store();
    s.appendProgress('op1', { step: 'one', at: 'now' });
    writeFileSync(join(s.dir, 'op1.progress'), '{"step": 5}\nnot json\n', { flag: 'a' });
    s.appendProgress('op1', { step: 'two', at: 'now' });
    expect(s.readProgress('op1', 0).lines.map((l) => l.step)).toEqual(['one', 'two']);
  });

  it('a damaged pending confirmation is an error naming it, not "unknown"', () => {
    const s = store();
    const c: PendingConfirmation = {
      token: 'tok1',
      requestId: 'r1',
      command: 'system-upgrade',
      argv: [],
      args: {},
      requester: actor,
      replyTo: { channel: 'slack', data: {} },
      expiresAt: new Date().toISOString(),
      needed: 1,
      approvers: [],
      approverActors: [],
    };
    s.saveConfirmation(c);
    expect(s.loadConfirmation('tok1')?.command).toBe('system-upgrade');
    expect(s.loadConfirmation('other')).toBeNull();
    const [file] = readdirSync(join(s.dir, 'confirm'));
    writeFileSync(join(s.dir, 'confirm', file as string), JSON.stringify({ ...c, needed: 'one' }));
    expect(() => s.loadConfirmation('tok1')).toThrow(
      /pending confirmation \S*confirm\/\S+\.json is not a valid record \(needed: /,
    );
  });

  it('a damaged request claim still makes the request a duplicate, its outcome naming the damage', () => {
    const s = store();
    const at = new Date();
    expect(s.claim(['k1'], at)).toBeNull();
    const [file] = readdirSync(join(s.dir, 'requests'));
    writeFileSync(join(s.dir, 'requests', file as string), '{"key": ');
    const seen = s.claim(['k1'], at);
    expect(seen?.key).toBe('k1');
    expect(seen?.outcome).toMatch(/request claim \S*requests\/\S+\.json is not valid JSON/);
  });
});
