import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hvBin, type World } from '../fixtures/world.js';
import { acceptanceWorld, advanceAcceptance, SUMMARY } from './acceptance.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** Run the CLI in a terminal (util-linux `script`), answering its confirmation with `answer`. */
function inTerminal(w: World, args: string[], answer: string): { code: number; out: string } {
  const r = spawnSync(
    'script',
    ['-qec', `${process.execPath} ${hvBin} ${args.join(' ')} --config ${w.configPath}`, '/dev/null'],
    { input: answer, encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status ?? -1, out: r.stdout.replace(/\r/g, '') };
}

describe('what an upgrade changes, in the CLI (issue 15, acceptance 1)', () => {
  it('upgrade-test records exactly the changes; its output, the result files, status, the wall notice and both prompts say them', () => {
    world = acceptanceWorld();
    const w = world;
    const running = w.hv(['status', '--json']).json.system.path as string;
    advanceAcceptance(w);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);

    // The result JSON (and --json) carry the full diff: exactly what moved, nothing else.
    const stored = JSON.parse(w.read(w.paths.testJson));
    expect(t.json.changes).toEqual(stored.changes);
    const d = stored.changes;
    expect(d.from.path).toBe(running);
    expect(d.to.path).toBe(stored.toplevel);
    const byName = (l: { name: string; from: string[]; to: string[] }[]) =>
      Object.fromEntries(l.map((c) => [c.name, `${c.from.join(',')}→${c.to.join(',')}`]));
    // linux and its initrd are the kernel's own paths (the `kernel` line names the change).
    expect(byName(d.changed)).toEqual({
      'initrd-linux': '6.6.1→6.6.2',
      linux: '6.6.1→6.6.2',
      qemu: '9.0.1→9.1.0',
    });
    expect(byName(d.added)).toEqual({ swtpm: '→0.9.0' });
    expect(byName(d.removed)).toEqual({ spice: '0.15.1→' });
    expect(d.rebuilt).toEqual(['libvirt']);
    expect(d.kernel).toEqual({ from: '6.6.1', to: '6.6.2' });
    expect(d.highlights.map((h: { name: string }) => h.name)).toEqual(['qemu']);
    expect(stored.changesError).toBeUndefined();

    // The human result file: a Changes section with the full list.
    const text = w.read(w.paths.testText);
    expect(text).toContain(
      [
        'Changes:',
        '  Highlights: kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0',
        '  Kernel: 6.6.1 → 6.6.2',
        '  Changed (3):',
        '    initrd-linux 6.6.1 → 6.6.2',
        '    linux 6.6.1 → 6.6.2',
        '    qemu 9.0.1 → 9.1.0',
        '  Added (1):',
        '    swtpm 0.9.0',
        '  Removed (1):',
        '    spice 0.15.1',
        '  Rebuilt at the same version: 1',
      ].join('\n'),
    );
    expect(text.startsWith('Upgrade Test: PASSED\n')).toBe(true);

    // The progress of the command names the changes as soon as they are known.
    expect(t.stderr).toContain(SUMMARY);

    // The test.passed notice on the wall channel carries the short form.
    const passed = w.wallMessages().find((m) => m.includes('Upgrade test PASSED'));
    expect(passed).toContain(`Changes: ${SUMMARY}`);

    // hv status: one short line, and the summary string in --json.
    const st = w.hv(['status']);
    expect(st.stdout).toMatch(
      new RegExp(`Last test:   PASSED .*\\n  Changes: ${esc(SUMMARY)}; closure \\+16 B\\n`),
    );
    expect(w.hv(['status', '--json']).json.lastTest.changes).toBe(`${SUMMARY}; closure +16 B`);

    // The terminal prompt of system-upgrade says it before asking (declined: nothing changes).
    const no = inTerminal(w, ['system-upgrade'], 'n\n');
    const told = no.out.indexOf(`Changes: ${SUMMARY}`);
    expect(told, no.out).toBeGreaterThan(no.out.indexOf('About to run "hv system-upgrade" on hv01:'));
    expect(no.out.indexOf('Really run "hv system-upgrade" on hv01? [y/N]')).toBeGreaterThan(told);
    expect(no.code).toBe(2);

    // Applied: the upgrade.applied notice carries it too, and the record keeps the diff.
    const up = w.hv(['system-upgrade', '--yes', '--json']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    expect(up.json.changes).toEqual(d);
    const applied = w.wallMessages().find((m) => m.includes('System upgrade applied'));
    expect(applied).toContain(`Changes: ${SUMMARY}`);
    // Status keeps the upgrade's summary, not its full list; the applied test no longer shows.
    const after = w.hv(['status', '--json']).json;
    expect(after.lastUpgrade.changes).toBe(`${SUMMARY}; closure +16 B`);

    // The rollback prompt: what going back changes, from the running system to generation 1.
    const back = inTerminal(w, ['rollback'], 'n\n');
    expect(back.out).toContain(
      'Changes: kernel 6.6.2 → 6.6.1, QEMU 9.1.0 → 9.0.1; 3 changed, 1 added, 1 removed, 1 rebuilt; closure -16 B',
    );
    expect(back.out.indexOf('Changes: kernel 6.6.2')).toBeLessThan(
      back.out.indexOf('Really run "hv rollback"'),
    );
    expect(back.code).toBe(2);
  });

  it('the plain upgrade-test output has the summary and the full list', () => {
    world = acceptanceWorld();
    const w = world;
    advanceAcceptance(w);
    const t = w.hv(['upgrade-test']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    const out = t.stdout;
    expect(out).toContain(`\nChanges: ${SUMMARY}; closure +16 B\n`);
    expect(out).toContain('\nChanges:\n  Highlights: kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0\n');
    expect(out).toContain('    qemu 9.0.1 → 9.1.0\n');
    expect(out).toContain('  Added (1):\n    swtpm 0.9.0\n');
    expect(out).toContain('  Removed (1):\n    spice 0.15.1\n');
    expect(out).toContain('  Rebuilt at the same version: 1\n');
    // The verdict stays first.
    expect(out.startsWith('Upgrade Test: PASSED')).toBe(true);
  });

  it('a diff that cannot be computed does not fail the test: changesError is recorded and said', () => {
    world = acceptanceWorld();
    const w = world;
    // A nix that refuses `path-info --recursive` (the diff's only query) and runs everything else.
    // hv finds nix-store, nix-env… next to tools.nix: they are linked beside the wrapper.
    const real = realpathSync(spawnSync('sh', ['-c', 'command -v nix'], { encoding: 'utf8' }).stdout.trim());
    const dir = join(w.root, 'nix-wrapper');
    mkdirSync(dir);
    for (const tool of readdirSync(dirname(real)))
      if (tool.startsWith('nix-')) symlinkSync(join(dirname(real), tool), join(dir, tool));
    const wrapper = join(dir, 'nix');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = path-info ] && { echo "error: store is on holiday" >&2; exit 1; }; done\nexec ${real} "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    (w.config.tools as Record<string, string>).nix = wrapper;
    w.writeConfig();
    advanceAcceptance(w);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    expect(t.json.status).toBe('passed');
    expect(t.json.changes).toBeUndefined();
    expect(t.json.changesError).toMatch(/store is on holiday/);
    expect(w.read(w.paths.testText)).toMatch(
      /Changes:\n {2}unknown: nix path-info failed .*store is on holiday/,
    );
    expect(w.hv(['status']).stdout).toMatch(
      / {2}Changes: unknown \(nix path-info failed .*store is on holiday\)/,
    );
  });

  it('test.watch highlights a watched package (zfs added)', () => {
    world = acceptanceWorld();
    const w = world;
    (w.config.test as Record<string, unknown>).watch = ['zfs'];
    w.writeConfig();
    advanceAcceptance(w, ['zfs-kernel-2.2.4-6.6.2']);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    expect(t.json.changes.highlights.map((h: { name: string }) => h.name)).toEqual(['qemu', 'zfs-kernel']);
    const line = w.hv(['status']).stdout;
    expect(line).toContain(
      'Changes: kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0, zfs-kernel added (2.2.4-6.6.2); 3 changed, 2 added, 1 removed, 1 rebuilt',
    );
  });
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
