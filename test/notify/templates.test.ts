import { describe, expect, it } from 'vitest';
import { makeEvent } from '../../src/notify/events.js';
import {
  escapeHtml,
  renderDigestText,
  renderHtml,
  renderText,
  splitMessage,
  subject,
  truncate,
} from '../../src/notify/templates.js';

const update = makeEvent('update.available', {
  host: 'hv01',
  key: 'nixpkgs@abc',
  title: 'NixOS update available: nixos-24.05 2024-09-03',
  data: {
    input: 'nixpkgs',
    branch: 'nixos-24.05',
    current: { rev: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', date: '2024-08-20' },
    available: { rev: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', date: '2024-09-03' },
    releases: [{ branch: 'nixos-24.11' }],
  },
  next: 'hv upgrade-test',
  detailsFile: '/var/lib/hypervisor/update-available',
});

describe('templates', () => {
  it('subject names host and what happened; text has the facts, next command and details file', () => {
    expect(subject(update)).toBe('[hv01] NixOS update available: nixos-24.05 2024-09-03');
    const text = renderText(update);
    expect(text).toMatch(/^NixOS update available: nixos-24\.05 2024-09-03\n/);
    expect(text).toMatch(/Branch: +nixos-24\.05/);
    expect(text).toMatch(/Installed: +a{40} \(2024-08-20\)/);
    expect(text).toMatch(/Available: +b{40} \(2024-09-03\)/);
    expect(text).toMatch(/Newer release: +nixos-24\.11/);
    expect(text).toContain('Next: hv upgrade-test');
    expect(text).toContain('Details: /var/lib/hypervisor/update-available');
  });

  it('escapes everything in HTML', () => {
    const nasty = makeEvent('test.failed', {
      host: 'hv01',
      key: 'x',
      title: 'Upgrade test failed: <script>alert("x")</script>',
      data: { reason: 'unit <b>&</b> failed', error: "line1\n<img src=x onerror='y'>" },
      next: 'hv upgrade-test && echo "ok"',
    });
    const html = renderHtml(nasty);
    expect(html).not.toMatch(/<script>|<img|<b>/);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('unit &lt;b&gt;&amp;&lt;/b&gt; failed');
    expect(html).toContain('&lt;img src=x onerror=&#39;y&#39;&gt;');
    expect(html).toContain('hv upgrade-test &amp;&amp; echo &quot;ok&quot;');
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
    // The full error text is part of the plain form too.
    expect(renderText(nasty)).toContain("<img src=x onerror='y'>");
  });

  it('a failed test shows its facts, the error and what to do', () => {
    const failed = makeEvent('test.failed', {
      host: 'hv01',
      key: 'k',
      title: 'Upgrade test FAILED on hv01 at health (libvirtd inactive)',
      data: {
        status: 'failed',
        failedStep: 'health',
        reverted: true,
        toplevel: '/nix/store/abc-nixos-system',
        error: 'libvirtd: inactive',
        guidance: 'Look at journalctl -u libvirtd.\nThen run hv upgrade-test again.',
        checks: [{ name: 'x' }],
      },
      next: 'hv upgrade-test',
    });
    const text = renderText(failed);
    expect(text).toMatch(/Failed step: +health/);
    expect(text).toMatch(/Reverted: +true/);
    expect(text).toMatch(/Toplevel: +\/nix\/store\/abc-nixos-system/);
    expect(text).toContain('libvirtd: inactive');
    expect(text).toContain('What to do:\nLook at journalctl -u libvirtd.\nThen run hv upgrade-test again.');
    expect(text).not.toContain('[object Object]');
  });

  it('digest text lists every event, in order', () => {
    const e2 = { ...update, title: 'second', at: '2024-09-03T12:00:00.000Z' };
    const text = renderDigestText('hv01', [update, e2], { kind: 'daily', label: '2024-09-03' });
    expect(text).toMatch(
      /^Daily digest 2024-09-03: 2 notifications on hv01\n\n1\. NixOS update.*\n2\. second/,
    );
  });

  it('truncate keeps the limit and points at the details file', () => {
    const long = Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(30)}`).join('\n');
    const t = truncate(long, 500, '/var/lib/hypervisor/update-available');
    expect(t.length).toBeLessThanOrEqual(500);
    expect(t).toMatch(/… \(truncated; full details: \/var\/lib\/hypervisor\/update-available\)$/);
    expect(long.startsWith(t.slice(0, t.indexOf('\n…')))).toBe(true);
    expect(truncate('short', 500)).toBe('short');
    expect(truncate(long, 10).length).toBeLessThanOrEqual(10);
  });

  it('splitMessage keeps every line in order within the limit', () => {
    const lines = Array.from(
      { length: 200 },
      (_, i) => `line ${String(i).padStart(4, '0')}: ${'y'.repeat(40)}`,
    );
    const parts = splitMessage(lines.join('\n'), 2000);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(2000);
    expect(parts.join('\n')).toBe(lines.join('\n'));
    // A single line longer than the limit is cut, nothing lost.
    const one = 'z'.repeat(4500);
    const cut = splitMessage(one, 2000);
    expect(cut.map((p) => p.length)).toEqual([2000, 2000, 500]);
    expect(cut.join('')).toBe(one);
    expect(splitMessage('', 10)).toEqual(['']);
  });
});
