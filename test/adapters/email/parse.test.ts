import { describe, expect, it } from 'vitest';
import { automatic } from '../../../adapters/email/intake/filters.js';
import { looksLikeMail, parseMail } from '../../../adapters/email/intake/parse.js';
import { message } from './dkim-signer.js';

const parse = (m: string) => parseMail(Buffer.from(m));

describe('email intake: reading the command', () => {
  it('from the Subject, after reply prefixes and the [hv:…] tag; words split as in chat', async () => {
    const m = await parse(
      message({ from: 'Alice <Alice@Example.ORG>', subject: 'RE: Fwd: AW: Hv rollback  --to 3' }),
    );
    expect([m.from, m.command, m.argv]).toEqual(['alice@example.org', 'rollback', ['--to', '3']]);
    const r = await parse(
      message({
        from: 'a@example.org',
        subject: 'Re: [hv:abcdefghijklmnop.ABCDEFGHIJKLMNOPQRSTUV] Confirm: hv system-upgrade on hv01',
      }),
    );
    expect(r.token).toBe('abcdefghijklmnop.ABCDEFGHIJKLMNOPQRSTUV');
  });

  it('else from the first non-empty, non-quoted body line, before the signature', async () => {
    const body =
      '\n\n> hv system-upgrade\nOn Tue, hv wrote:\n  hv upgrade-test --release 25.05\nmore\n-- \nhv rollback';
    const m = await parse(message({ from: 'a@example.org', subject: 'Weekly', body }));
    expect([m.command, m.argv]).toEqual(['upgrade-test', ['--release', '25.05']]);
    const sigOnly = await parse(message({ from: 'a@example.org', subject: 'x', body: '-- \nhv status' }));
    expect(sigOnly.command).toBeUndefined();
  });

  it('HTML-only mail is read as text; attachments are ignored', async () => {
    const html = [
      'From: a@example.org',
      'Subject: hello',
      'Message-ID: <h@x>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<div><p>hv check-updates</p><blockquote>hv system-upgrade</blockquote></div>',
      '--b',
      'Content-Type: text/plain; name="run.txt"',
      'Content-Disposition: attachment; filename="run.txt"',
      '',
      'hv system-upgrade',
      '--b--',
      '',
    ].join('\r\n');
    const m = await parse(html);
    expect([m.command, m.argv]).toEqual(['check-updates', []]);
  });

  it('is it mail at all: a header block with a From field', () => {
    expect(looksLikeMail(Buffer.from(message({ from: 'a@example.org', subject: 's' })))).toBe(true);
    for (const s of [
      '',
      'hello\n',
      'Subject: x\n\nbody',
      ' From: folded-first-line\n\n',
      'From a@b Sat Jan  3 01:05:34 1996\n',
    ])
      expect(looksLikeMail(Buffer.from(s))).toBe(false);
  });

  it('RFC 3834: automatic mail, bounces, lists and hv itself are never answered', () => {
    const own = 'hv@hv01.example.org';
    const h = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, [v]]));
    expect(automatic(h({ 'auto-submitted': 'no' }), 'a@example.org', own)).toBeUndefined();
    expect(automatic(h({ 'auto-submitted': 'auto-generated' }), 'a@example.org', own)).toMatch(
      /auto-submitted/,
    );
    expect(automatic(h({ precedence: 'junk' }), 'a@example.org', own)).toMatch(/precedence/);
    expect(automatic(h({ 'list-id': '<l.example.org>' }), 'a@example.org', own)).toMatch(/List-Id/);
    expect(automatic(h({ 'return-path': '<>' }), 'a@example.org', own)).toMatch(/bounce/);
    expect(automatic({}, 'mailer-daemon@example.org', own)).toMatch(/automatic sender/);
    expect(automatic({}, own, own)).toBe('from hv itself');
  });
});
