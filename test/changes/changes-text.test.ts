import { describe, expect, it } from 'vitest';
import { changesLine, changesSection, fitSummary } from '../../src/engine/changes-text.js';
import { diffClosures, type StorePathInfo } from '../../src/engine/closure-diff.js';

const store = (name: string, hash = 'a'): StorePathInfo => ({
  path: `/nix/store/${hash.repeat(32)}-${name}`,
  narSize: 1000,
});

/** A diff where the kernel, QEMU, libvirt and many watched packages change. */
function bigDiff(watched: number) {
  const names = Array.from({ length: watched }, (_, i) => `zfs-tool${i}`);
  return diffClosures({
    from: {
      path: '/nix/store/old',
      kernel: '6.6.1',
      closure: [store('qemu-9.0.1'), store('libvirt-10.5.0'), ...names.map((n) => store(`${n}-1.0`))],
    },
    to: {
      path: '/nix/store/new',
      kernel: '6.6.2',
      closure: [
        store('qemu-9.1.0', 'b'),
        store('libvirt-10.6.0', 'b'),
        ...names.map((n) => store(`${n}-2.0`, 'b')),
      ],
    },
    watch: ['zfs'],
  });
}

describe('the summary fitted for subjects and prompts', () => {
  it('fits as it is when short; the counts are never dropped', () => {
    const d = bigDiff(1);
    expect(fitSummary(d, ['zfs'], 1000)).toBe(
      'kernel 6.6.1 → 6.6.2, libvirt 10.5.0 → 10.6.0, QEMU 9.0.1 → 9.1.0, zfs-tool0 1.0 → 2.0; 3 changed; closure ±0 B',
    );
  });

  it('too long: the closure delta goes, then the last highlights give way to "+N more highlights", kernel first always', () => {
    const d = bigDiff(60);
    const s = fitSummary(d, ['zfs'], 300);
    expect(s.length).toBeLessThanOrEqual(300);
    expect(
      s.startsWith('kernel 6.6.1 → 6.6.2, libvirt 10.5.0 → 10.6.0, QEMU 9.0.1 → 9.1.0, zfs-tool0 1.0 → 2.0'),
    ).toBe(true);
    expect(s).toMatch(/, \+\d+ more highlights; 62 changed$/);
    // Even a tiny limit keeps the counts and says that highlights were left out.
    expect(fitSummary(d, ['zfs'], 10)).toBe('+63 more highlights; 62 changed');
  });

  it('a diff that failed is said, on one line, cut', () => {
    const line = changesLine({ changesError: `nix path-info failed:\n${'x'.repeat(1000)}` }, []);
    expect(line).toMatch(/^Changes: unknown \(nix path-info failed: x+…\)$/);
    expect(line?.length).toBeLessThan(330);
    expect(changesLine({}, [])).toBeUndefined();
    expect(changesSection({}, [])).toEqual([]);
  });
});
