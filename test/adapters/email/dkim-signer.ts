import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DnsServer } from './dns-server.js';

/** Debian's python3 (python3-dkim lives there), not a pyenv shim on PATH. */
const PYTHON = '/usr/bin/python3';

const SIGN = `
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], 'rb').read()
sig = dkim.sign(msg, sys.argv[2].encode(), sys.argv[3].encode(), key,
                canonicalize=(b'relaxed', b'relaxed'))
sys.stdout.buffer.write(sig + msg)
`;

/**
 * A signing domain: an RSA key whose public half the DNS server publishes at
 * `<selector>._domainkey.<domain>`; messages are signed by python3-dkim (an independent signer).
 */
export class DkimDomain {
  private readonly keyFile: string;

  constructor(
    readonly domain: string,
    dir: string,
    dns: DnsServer,
    readonly selector = 'hv2026',
    dmarc: string | null = 'v=DMARC1; p=reject; adkim=r',
  ) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.keyFile = join(dir, `${domain}.${selector}.pem`);
    writeFileSync(this.keyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    dns.txt.set(`${selector}._domainkey.${domain}`, [`v=DKIM1; k=rsa; p=${spki}`]);
    if (dmarc) dns.txt.set(`_dmarc.${domain}`, [dmarc]);
  }

  /** The message with a DKIM-Signature header by this domain prepended. */
  sign(message: string | Buffer): Buffer {
    const r = spawnSync(PYTHON, ['-c', SIGN, this.keyFile, this.selector, this.domain], {
      input: typeof message === 'string' ? Buffer.from(message, 'utf8') : message,
    });
    if (r.status !== 0) throw new Error(`python3-dkim failed: ${r.stderr.toString()}`);
    return r.stdout;
  }
}

let seq = 0;

/** A plain-text mail as a client would send it (CRLF lines). */
export function message(opts: {
  from: string;
  subject: string;
  body?: string;
  to?: string;
  messageId?: string;
  headers?: Record<string, string>;
}): string {
  const id = opts.messageId ?? `<m${++seq}.${Date.now()}@client.example>`;
  const head = [
    `From: ${opts.from}`,
    `To: ${opts.to ?? 'hv@hv01.example.org'}`,
    `Subject: ${opts.subject}`,
    `Message-ID: ${id}`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${head.join('\r\n')}\r\n\r\n${(opts.body ?? '').replace(/\r?\n/g, '\r\n')}\r\n`;
}
