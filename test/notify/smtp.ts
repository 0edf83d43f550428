import { createServer, type Server, type Socket } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { type HvRun, runHv } from '../fixtures/world.js';

/** A mail as the loopback server received it, with when it arrived. */
export interface Received {
  mail: ParsedMail;
  at: number;
  /** The authenticated user, if the client logged in. */
  user?: string;
  password?: string;
}

/**
 * A real SMTP server on loopback (smtp-server): records every mail parsed with mailparser; can
 * refuse messages with a given SMTP code, or stall connections (no greeting) to test timeouts.
 */
export class MailSink {
  readonly mails: Received[] = [];
  /** How many messages (DATA) were offered, refused ones included. */
  offered = 0;
  connections = 0;
  /** Decide per offered message (1-based): an SMTP code to refuse it with, or null to accept. */
  refuse: (n: number) => number | null = () => null;
  /** Hold every new connection without a greeting until set back to false. */
  stall = false;
  private stalled: (() => void)[] = [];

  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
  ) {}

  static async start(port = 0): Promise<MailSink> {
    let sink: MailSink | undefined;
    const auth = new Map<string, { user: string; password: string }>();
    const server = new SMTPServer({
      logger: false,
      hideSTARTTLS: true,
      authOptional: true,
      allowInsecureAuth: true,
      closeTimeout: 200,
      onConnect(_session, cb) {
        const s = sink as MailSink;
        s.connections++;
        if (s.stall) s.stalled.push(() => cb());
        else cb();
      },
      onAuth(a, session, cb) {
        auth.set(session.id, { user: a.username ?? '', password: a.password ?? '' });
        cb(null, { user: a.username });
      },
      onData(stream, session, cb) {
        const s = sink as MailSink;
        const n = ++s.offered;
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const code = s.refuse(n);
          if (code !== null) {
            cb(
              Object.assign(new Error(code >= 500 ? 'Rejected for good' : 'Try again later'), {
                responseCode: code,
              }),
            );
            return;
          }
          simpleParser(Buffer.concat(chunks)).then(
            (mail) => {
              const a = auth.get(session.id);
              s.mails.push({ mail, at: Date.now(), ...(a ? { user: a.user, password: a.password } : {}) });
              cb();
            },
            (e: Error) => cb(e),
          );
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = (server as unknown as { server: Server }).server.address();
    sink = new MailSink(server, typeof address === 'object' && address ? address.port : port);
    return sink;
  }

  /** Let stalled connections go on. */
  release(): void {
    this.stall = false;
    for (const go of this.stalled.splice(0)) go();
  }

  async waitFor(count: number, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.mails.length < count) {
      if (Date.now() > until) throw new Error(`expected ${count} mail(s), got ${this.mails.length}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): Promise<void> {
    this.release();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A TCP server that accepts connections and never says a word: a hung mail server. */
export class HungServer {
  private readonly sockets = new Set<Socket>();
  connectedAt: number[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<HungServer> {
    let hung: HungServer | undefined;
    const server = createServer((socket) => {
      hung?.sockets.add(socket);
      hung?.connectedAt.push(Date.now());
      socket.on('error', () => {});
      socket.on('close', () => hung?.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    hung = new HungServer(server, typeof address === 'object' && address ? address.port : 0);
    return hung;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An email channel config pointing at a loopback port. */
export function emailChannel(name: string, port: number, extra: Record<string, unknown> = {}) {
  return {
    type: 'email',
    name,
    from: 'hv@hv01.example.org',
    to: ['ops@example.org'],
    smtp: { host: '127.0.0.1', port, secure: false },
    ...extra,
  };
}

/** Run the CLI without blocking this process (the SMTP servers above live in it and must answer). */
export function hvAsync(
  world: { configPath: string },
  args: string[],
  opts: { timeoutMs?: number } = {},
): Promise<HvRun & { ms: number }> {
  return runHv(world.configPath, args, { timeoutMs: opts.timeoutMs ?? 120_000 });
}
