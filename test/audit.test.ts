import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type HvRun, World } from './fixtures/world.js';

type Rec = Record<string, unknown> & { seq: number; prev: string; mac?: string; hash?: string };

const GENESIS = '0'.repeat(64);
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const lines = (text: string): Rec[] =>
  text
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Rec);
const jsonl = (recs: Rec[]) => `${recs.map((r) => JSON.stringify(r)).join('\n')}\n`;

/**
 * The chain as the previous hv wrote it (copied from its src/audit.ts): each record's `hash` is the
 * unkeyed sha256 of the record without it, and `audit.head` holds `{ seq, hash }`.
 */
function legacyChain(entries: Record<string, unknown>[], host = 'hv01'): Rec[] {
  let prev = GENESIS;
  return entries.map((entry, i) => {
    const base = { seq: i + 1, at: new Date(Date.UTC(2024, 0, 1, 0, i)).toISOString(), host, ...entry, prev };
    const rec = { ...base, hash: sha256(JSON.stringify(base)) };
    prev = rec.hash;
    return rec;
  });
}

const someEntries = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    actor: { channel: 'cli', id: 'root' },
    operation: 'check-updates',
    args: {},
    result: i % 2 ? 'update-available' : 'ok',
    details: { exitCode: 0 },
  }));

/** Rewrite every record's MAC with `sign` (an attacker's idea of the MAC), and the head to match. */
function recompute(
  recs: Rec[],
  sign: (body: string) => string,
  headSign: (seq: number, mac: string) => string,
) {
  let prev: string | undefined;
  const out = recs.map((r) => {
    const { mac: _mac, ...rest } = r;
    const body = { ...rest, prev: prev ?? r.prev };
    const rec = { ...body, mac: sign(JSON.stringify(body)) } as Rec;
    prev = rec.mac;
    return rec;
  });
  const last = out.at(-1) as Rec;
  return {
    recs: out,
    head: { seq: last.seq, mac: last.mac, headMac: headSign(last.seq, last.mac as string) },
  };
}

function expectFails(r: HvRun, pattern: RegExp) {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.stderr).toMatch(pattern);
}

describe('hv audit --verify on a host with history (real Nix)', () => {
  let w: World;
  let pristine: string;
  const outputs: string[] = [];
  const hv = (args: string[]) => {
    const r = w.hv(args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const state = () => w.paths.state;
  const file = (name: string) => join(state(), name);
  const restore = () => {
    rmSync(state(), { recursive: true, force: true });
    cpSync(pristine, state(), { recursive: true });
  };

  beforeAll(() => {
    w = new World({ branches: ['nixos-24.05'] });
    expect(w.hv(['check-updates']).code).toBe(0);
    w.upstream.advance('nixos-24.05');
    expect(w.hv(['check-updates']).code).toBe(100);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr).toBe(0);
    pristine = join(w.root, 'pristine-state');
    cpSync(state(), pristine, { recursive: true });
  }, 300_000);
  afterAll(() => w?.cleanup());
  afterEach(() => restore());

  it('an untouched log verifies as keyed; the key is root-only 0600 and appears in no output, log or state file', () => {
    const r = hv(['audit', '--verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ status: 'ok', keyed: true, legacyRecords: 0, problems: [] });
    expect(r.json.records).toBeGreaterThanOrEqual(3);
    expect(hv(['audit', '--verify']).stdout).toMatch(/intact: \d+ records, keyed/);
    const st = statSync(file('audit.key'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    expect(st.size).toBe(32);
    expect(statSync(file('audit.head')).mode & 0o077).toBe(0);
    const key = readFileSync(file('audit.key'));
    const forms = [key.toString('hex'), key.toString('base64'), key.toString('base64url')];
    const everything = [...outputs];
    for (const dir of [state(), w.paths.log])
      for (const f of readdirSync(dir, { recursive: true, withFileTypes: true }))
        if (f.isFile() && f.name !== 'audit.key')
          everything.push(readFileSync(join(f.parentPath, f.name), 'latin1'));
    for (const text of everything) for (const form of forms) expect(text).not.toContain(form);
    expect(everything.join('').includes(key.toString('latin1'))).toBe(false);
  });

  it('a chain recomputed without the key (old unkeyed sha256, or another key) fails, naming the line', () => {
    const recs = lines(w.read(w.paths.audit));
    const unkeyed = recompute(recs, sha256, (seq, mac) => sha256(`${seq}${mac}`));
    writeFileSync(w.paths.audit, jsonl(unkeyed.recs));
    writeFileSync(file('audit.head'), JSON.stringify(unkeyed.head));
    expectFails(hv(['audit', '--verify']), /line 1: content does not match its MAC/);

    const other = randomBytes(32);
    const mac = (tag: string) => (s: string) =>
      createHmac('sha256', other).update(tag).update(s).digest('hex');
    const forged = recompute(recs, mac('hv-audit-record-v1\n'), (seq, m) =>
      mac('hv-audit-head-v1\n')(JSON.stringify({ seq, mac: m })),
    );
    writeFileSync(w.paths.audit, jsonl(forged.recs));
    writeFileSync(file('audit.head'), JSON.stringify(forged.head));
    const r = hv(['audit', '--verify', '--json']);
    expect(r.code).toBe(1);
    expect(r.json.status).toBe('failed');
    expect(r.json.problems).toContain(
      'line 1: content does not match its MAC (edited, or recomputed without the key)',
    );
    expect(r.json.problems.join('\n')).toMatch(/audit\.head does not match its MAC/);
  });

  it('a log rewritten in the old unkeyed format fails, with or without the key file', () => {
    const recs = lines(w.read(w.paths.audit));
    const legacy = legacyChain(
      recs.map(({ seq: _s, at: _a, host: _h, prev: _p, mac: _m, ...entry }) => entry),
    );
    writeFileSync(w.paths.audit, jsonl(legacy));
    const last = legacy.at(-1) as Rec;
    writeFileSync(file('audit.head'), JSON.stringify({ seq: last.seq, hash: last.hash }));
    expectFails(hv(['audit', '--verify']), /audit key .* exists but no record is keyed/);
    rmSync(file('audit.key'));
    expectFails(hv(['audit', '--verify']), /only unkeyed records/);
  });

  it('an edited record, a deleted record, a truncated tail or a rewritten head each fail', () => {
    const text = w.read(w.paths.audit);
    const raw = text.trim().split('\n');
    writeFileSync(
      w.paths.audit,
      `${raw.map((l, i) => (i === 1 ? l.replace('"root"', '"mallory"') : l)).join('\n')}\n`,
    );
    expectFails(hv(['audit', '--verify']), /line 2: content does not match its MAC/);

    writeFileSync(w.paths.audit, `${raw.filter((_, i) => i !== 1).join('\n')}\n`);
    expectFails(hv(['audit', '--verify']), /line 2: sequence 3 follows 1 \(a record is missing\)/);

    writeFileSync(w.paths.audit, `${raw.slice(0, -1).join('\n')}\n`);
    expectFails(hv(['audit', '--verify']), /records removed from the end/);

    // The head moved back to match the truncated log, without the key.
    const head = JSON.parse(w.read(file('audit.head')));
    const prevRec = lines(w.read(w.paths.audit)).at(-1) as Rec;
    writeFileSync(file('audit.head'), JSON.stringify({ ...head, seq: prevRec.seq, mac: prevRec.mac }));
    expectFails(hv(['audit', '--verify']), /audit\.head does not match its MAC/);
  });

  it('a deleted audit log on a host with operation history fails, and stays failed after the next operation', () => {
    rmSync(w.paths.audit);
    rmSync(file('audit.head'));
    expectFails(
      hv(['audit', '--verify']),
      /audit\.jsonl is missing but .*audit\.key.* show that operations ran/,
    );
    rmSync(file('audit.key'));
    const r = hv(['audit', '--verify', '--json']);
    expect(r.code).toBe(1);
    expect(r.json.records).toBe(0);
    expect(r.json.problems[0]).toMatch(
      /last-check\.json.*upgrade-test-result\.json.*the audit log was deleted/,
    );
    writeFileSync(w.paths.audit, '');
    expectFails(hv(['audit', '--verify']), /audit\.jsonl is empty but/);

    // The next operation starts a new chain and records what it found: state from before it.
    rmSync(w.paths.audit);
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const f of ['last-check.json', 'upgrade-test-result.json']) utimesSync(file(f), hourAgo, hourAgo);
    expect(hv(['check-updates']).code).toBe(100);
    expectFails(
      hv(['audit', '--verify']),
      /line 1: hv recorded an audit incident .*no audit log although .*the log was deleted/,
    );
  });

  it('a missing key while records exist: verification impossible, also after the next operation', () => {
    rmSync(file('audit.key'));
    const r = hv(['audit', '--verify']);
    expectFails(r, /the audit key .*audit\.key is gone: the \d+ keyed records cannot be verified/);
    expect(hv(['check-updates']).code).toBe(100);
    expect(statSync(file('audit.key')).mode & 0o777).toBe(0o600);
    const after = hv(['audit', '--verify']);
    expectFails(after, /written under an audit key that is gone/);
    expect(after.stderr).toMatch(/audit key was missing; a new key was created/);
  });

  it('a key readable by others fails', () => {
    chmodSync(file('audit.key'), 0o644);
    expectFails(hv(['audit', '--verify']), /audit key .* has mode 644/);
  });

  it('an unkeyed record appended after keyed ones fails', () => {
    const recs = lines(w.read(w.paths.audit));
    const last = recs.at(-1) as Rec;
    const { mac: _m, ...rest } = last;
    const body = { ...rest, seq: last.seq + 1, prev: last.mac as string };
    writeFileSync(w.paths.audit, jsonl([...recs, { ...body, hash: sha256(JSON.stringify(body)) }]));
    expectFails(hv(['audit', '--verify']), /unkeyed record after keyed ones/);
  });

  it('an append stopped before it updated the head still verifies and the chain goes on; a torn last line does not', () => {
    // The state a crash leaves between writing a record and its head (hv's own head, made with the key).
    const key = readFileSync(file('audit.key'));
    const recs = lines(w.read(w.paths.audit));
    const before = recs.at(-2) as Rec;
    const headMac = createHmac('sha256', key)
      .update('hv-audit-head-v1\n')
      .update(JSON.stringify({ seq: before.seq, mac: before.mac }))
      .digest('hex');
    writeFileSync(file('audit.head'), JSON.stringify({ seq: before.seq, mac: before.mac, headMac }));
    expect(hv(['audit', '--verify']).code).toBe(0);
    expect(hv(['check-updates']).code).toBe(100);
    const v = hv(['audit', '--verify', '--json']);
    expect(v.code, v.stdout).toBe(0);
    expect(v.json.records).toBe(recs.length + 1);

    writeFileSync(w.paths.audit, `${w.read(w.paths.audit)}{"seq":${recs.length + 2},"at":"20`);
    const torn = hv(['audit', '--verify', '--json']);
    expect(torn.code).toBe(1);
    expect(torn.json.problems).toContain(`line ${recs.length + 2}: not valid JSON`);
    expect(hv(['check-updates']).code).toBe(100);
    expectFails(hv(['audit', '--verify']), /hv recorded an audit incident .*not a whole record/);
    expect(
      lines(
        w
          .read(w.paths.audit)
          .split('\n')
          .filter((l) => !l.endsWith('"at":"20'))
          .join('\n'),
      ).at(-1),
    ).toMatchObject({
      operation: 'check-updates',
      seq: recs.length + 3,
    });
  });

  it('appends from many processes at once keep the chain intact', async () => {
    const runs = await Promise.all(Array.from({ length: 6 }, () => w.hvAsync(['check-updates'])));
    for (const r of runs) expect([4, 100]).toContain(r.code);
    const v = hv(['audit', '--verify', '--json']);
    expect(v.code, v.stderr).toBe(0);
    const recs = lines(w.read(w.paths.audit));
    expect(new Set(recs.map((r) => r.seq)).size).toBe(recs.length);
    expect(recs.some((r) => r.result === 'incident')).toBe(false);
  });
});

describe('hv audit --verify: fresh hosts and migration from the unkeyed chain', () => {
  let world: World | undefined;
  afterEach(() => {
    world?.cleanup();
    world = undefined;
  });

  it('a fresh host verifies as intact with 0 records, then as keyed after its first operation', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    const w = world;
    const fresh = w.hv(['audit', '--verify', '--json']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.json).toMatchObject({ status: 'ok', records: 0, keyed: false, problems: [] });
    expect(existsSync(join(w.paths.state, 'audit.key'))).toBe(false);
    rmSync(w.paths.state, { recursive: true });
    expect(w.hv(['audit', '--verify']).code).toBe(0);
    w.hv(['check-updates']);
    const after = w.hv(['audit', '--verify', '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(after.json).toMatchObject({ records: 1, keyed: true, keyedRecords: 1 });
  });

  it('an unkeyed log from the previous hv is sealed by the first keyed record and then verifies', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    const w = world;
    const legacy = legacyChain(someEntries(3));
    const last = legacy.at(-1) as Rec;
    writeFileSync(w.paths.audit, jsonl(legacy));
    writeFileSync(join(w.paths.state, 'audit.head'), JSON.stringify({ seq: 3, hash: last.hash }));
    // Before any keyed record, an unkeyed chain is not passed as verified.
    expectFails(w.hv(['audit', '--verify']), /only unkeyed records \(3/);

    w.hv(['check-updates']);
    const v = w.hv(['audit', '--verify', '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.json).toMatchObject({ records: 4, keyed: true, legacyRecords: 3, keyedRecords: 1 });
    expect(w.hv(['audit', '--verify']).stdout).toMatch(
      /the first 3 from an earlier hv, sealed under the key/,
    );
    const recs = lines(w.read(w.paths.audit));
    expect(recs[3]).toMatchObject({ seq: 4, prev: last.hash, operation: 'check-updates' });
    expect(recs.slice(0, 3)).toEqual(legacy);

    // The sealed prefix cannot be rewritten afterwards, even with its unkeyed chain recomputed.
    const edited = legacyChain(
      someEntries(3).map((e, i) => (i === 0 ? { ...e, actor: { channel: 'cli', id: 'x' } } : e)),
    );
    writeFileSync(w.paths.audit, jsonl([...edited, recs[3] as Rec]));
    expectFails(w.hv(['audit', '--verify']), /line 4: does not chain to the previous record/);
  });

  it('a tampered unkeyed log is kept, recorded as unverifiable when sealed, and fails verification', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    const w = world;
    const legacy = legacyChain(someEntries(3));
    (legacy[1] as Rec).result = 'denied'; // edited without recomputing its hash
    writeFileSync(w.paths.audit, jsonl(legacy));
    writeFileSync(
      join(w.paths.state, 'audit.head'),
      JSON.stringify({ seq: 3, hash: (legacy.at(-1) as Rec).hash }),
    );
    w.hv(['check-updates']);
    const v = w.hv(['audit', '--verify', '--json']);
    expect(v.code).toBe(1);
    expect(v.json.problems).toContain('line 2: content does not match its hash (edited)');
    expect(v.json.problems.join('\n')).toMatch(
      /line 4: hv recorded an audit incident .*unkeyed log from an earlier hv \(3 records\) did not verify/,
    );
    const recs = lines(w.read(w.paths.audit));
    expect(recs.slice(0, 3)).toEqual(legacy);
    expect(recs[3]).toMatchObject({
      operation: 'audit',
      result: 'incident',
      details: { kind: 'legacy-unverified' },
    });
    expect((recs[3] as Rec & { details: { problems: string[] } }).details.problems).toContain(
      'line 2: content does not match its hash (edited)',
    );
    expect(recs[4]).toMatchObject({ operation: 'check-updates' });
  });
});
