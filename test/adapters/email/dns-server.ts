import { createSocket, type Socket } from 'node:dgram';

/**
 * A small authoritative DNS server on 127.0.0.1 (UDP, the real wire protocol, RFC 1035): answers TXT
 * queries for the names it was given (DKIM keys, DMARC records), NXDOMAIN for any other name.
 */
export class DnsServer {
  /** Lower-case name → TXT strings (each one record). */
  readonly txt = new Map<string, string[]>();
  /** Names asked for, in order (lower-case). */
  readonly queries: string[] = [];
  /** Answer every query with SERVFAIL (a resolver in trouble). */
  servfail = false;

  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {}

  static async start(): Promise<DnsServer> {
    const socket = createSocket('udp4');
    let server: DnsServer | undefined;
    socket.on('message', (msg, rinfo) => {
      const answer = server?.answer(msg);
      if (answer) socket.send(answer, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    server = new DnsServer(socket, socket.address().port);
    return server;
  }

  /** `host:port` for `dnsServers`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private answer(q: Buffer): Buffer | undefined {
    if (q.length < 17) return undefined;
    const labels: string[] = [];
    let i = 12;
    while (i < q.length && q[i] !== 0) {
      const len = q[i] as number;
      if (len > 63) return undefined; // no compression in questions
      labels.push(q.subarray(i + 1, i + 1 + len).toString('latin1'));
      i += 1 + len;
    }
    i++;
    if (i + 4 > q.length) return undefined;
    const qtype = q.readUInt16BE(i);
    const question = q.subarray(12, i + 4);
    const name = labels.join('.').toLowerCase();
    this.queries.push(name);
    const records = this.txt.get(name);
    const answers: Buffer[] = [];
    if (records && qtype === 16)
      for (const text of records) {
        const data = Buffer.from(text, 'latin1');
        const chunks: Buffer[] = [];
        for (let o = 0; o < data.length || o === 0; o += 255) {
          const part = data.subarray(o, o + 255);
          chunks.push(Buffer.from([part.length]), part);
          if (data.length === 0) break;
        }
        const rdata = Buffer.concat(chunks);
        const rr = Buffer.alloc(12);
        rr.writeUInt16BE(0xc00c, 0); // the question's name
        rr.writeUInt16BE(16, 2); // TXT
        rr.writeUInt16BE(1, 4); // IN
        rr.writeUInt32BE(60, 6);
        rr.writeUInt16BE(rdata.length, 10);
        answers.push(rr, rdata);
      }
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2); // id
    const rd = (q[2] as number) & 0x01;
    header[2] = 0x80 | 0x04 | rd; // QR, AA, RD as asked
    if (this.servfail) {
      header[3] = 0x80 | 2; // RA, SERVFAIL
      header.writeUInt16BE(1, 4);
      return Buffer.concat([header, question]);
    }
    header[3] = 0x80 | (records ? 0 : 3); // RA; NXDOMAIN for names it does not know
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records && qtype === 16 ? records.length : 0, 6);
    return Buffer.concat([header, question, ...answers]);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
