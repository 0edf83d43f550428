import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackAdapter } from '../../../adapters/slack/adapter.js';
import type { Actor } from '../../../src/audit.js';
import type { CommandBus, CommandRequest, Evidence, Reply, SubmitOutcome } from '../../../src/bus/types.js';
import { postInteractive, postSlashCommand, SlackPeer } from '../../peers/slack-peer.js';
import { makeAdapter, realBusConfig, SIGNING_SECRET, until } from './harness.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The real bus, with what reached it recorded (the adapter under test cannot tell the difference). */
class WatchedBus implements CommandBus {
  readonly submits: { req: CommandRequest; outcome: SubmitOutcome }[] = [];
  readonly confirms: { token: string; actor: Actor; evidence?: Evidence; outcome: SubmitOutcome }[] = [];
  readonly cancels: { token: string; actor: Actor; evidence?: Evidence }[] = [];
  verifies = 0;
  constructor(private readonly inner: CommandBus) {}
  commands() {
    return this.inner.commands();
  }
  async submit(req: CommandRequest, reply: Reply) {
    const outcome = await this.inner.submit(req, reply);
    this.submits.push({ req, outcome });
    return outcome;
  }
  async confirm(token: string, actor: Actor, reply: Reply, evidence?: Evidence) {
    const outcome = await this.inner.confirm(token, actor, reply, evidence);
    this.confirms.push({ token, actor, evidence, outcome });
    return outcome;
  }
  async cancel(token: string, actor: Actor, reply?: Reply, evidence?: Evidence) {
    this.cancels.push({ token, actor, evidence });
    return this.inner.cancel(token, actor, reply, evidence);
  }
  verify(channel: string, evidence: Evidence) {
    this.verifies++;
    return this.inner.verify(channel, evidence);
  }
}

/** A raw HTTP exchange on one socket: what was sent, what came back, how it ended. */
interface RawOutcome {
  response: string;
  bytesWritten: number;
  closedAfterMs: number;
  ended: 'end' | 'error' | 'timeout';
}

/**
 * Writes `head`, then `chunk` every `everyMs` (at most `maxBytes` in all; chunked framing when
 * asked), until the server answers and closes or `giveUpMs` passes.
 */
function rawRequest(
  port: number,
  head: string,
  opts: { chunk?: Buffer; everyMs?: number; maxBytes?: number; chunked?: boolean; giveUpMs?: number } = {},
): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let written = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (ended: RawOutcome['ended']) => {
      if (done) return;
      done = true;
      if (timer) clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ response, bytesWritten: written, closedAfterMs: performance.now() - started, ended });
    };
    const giveUp = setTimeout(() => finish('timeout'), opts.giveUpMs ?? 15_000);
    socket.on('data', (d) => {
      response += d.toString('latin1');
    });
    socket.on('end', () => finish('end'));
    socket.on('close', () => finish('end'));
    socket.on('error', () => finish('error'));
    socket.on('connect', () => {
      socket.write(head);
      const chunk = opts.chunk;
      if (!chunk) return;
      const send = () => {
        if (done || socket.destroyed) return;
        if (opts.maxBytes !== undefined && written >= opts.maxBytes) {
          if (opts.chunked) socket.write('0\r\n\r\n');
          if (timer) clearInterval(timer);
          return;
        }
        const framed = opts.chunked
          ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
          : chunk;
        written += chunk.length;
        socket.write(framed);
      };
      timer = setInterval(send, opts.everyMs ?? 0);
    });
  });
}

/** Is the TCP port listening on 127.0.0.1 only (per /proc/net/tcp)? */
function listeningAddresses(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === '0A')
    .map((f) => f[1]?.split(':')[0] ?? '');
}

let peer: SlackPeer;
let adapter: SlackAdapter;
let cleanup: () => void;
let stopBus: () => Promise<void>;
let url: string;
let port: number;
let bus: WatchedBus;
let adapterSecretsRead: string[];
let signingFile: string;

beforeAll(async () => {
  peer = await SlackPeer.start();
  port = await freePort();
  const made = realBusConfig(peer, { mode: 'http', port });
  cleanup = made.cleanup;
  stopBus = () => made.bus.stop();
  signingFile = made.signingFile;
  bus = new WatchedBus(made.bus);
  const a = makeAdapter(made.config);
  adapter = a.adapter;
  adapterSecretsRead = a.secretsRead;
  await adapter.start({ bus });
  url = `http://127.0.0.1:${port}/slack/events`;
});
afterAll(async () => {
  await adapter?.stop();
  await stopBus?.();
  await peer?.stop();
  cleanup?.();
});

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('Slack HTTP mode: hv receiver, signatures checked by the engine', () => {
  it('a correctly signed /hv status is acknowledged, carries its evidence to the bus, and runs', async () => {
    const r = await postSlashCommand(url, SIGNING_SECRET, { text: 'status', trigger_id: 'trig-ok' });
    expect(r.status).toBe(200);
    expect(r.latencyMs).toBeLessThan(3_000);
    const sub = await until(() => bus.submits[0], 'the submit');
    expect(sub.req).toMatchObject({
      id: `slack:${peer.workspace.teamId}:trig-ok`,
      command: 'status',
      actor: { channel: 'slack', id: `${peer.workspace.teamId}:${peer.workspace.userId}` },
      evidence: { scheme: 'slack-v0' },
    });
    expect(sub.outcome.kind).toBe('accepted');
    // The engine ran it: the result reached the thread.
    await until(
      () => peer.messages.some((m) => m.threadTs && /status: [A-Z-]+/.test(m.text ?? '')),
      'the status result',
    );
  });

  it('the adapter never reads the signing secret file; it listens on loopback only', () => {
    expect(adapterSecretsRead).not.toContain(signingFile);
    expect(listeningAddresses(port)).toEqual(['0100007F']);
  });

  it('a wrong signature, a wrong secret or no signature gets 401 and never reaches bus.submit', async () => {
    const before = bus.submits.length;
    const zero = await postSlashCommand(
      url,
      SIGNING_SECRET,
      { text: 'upgrade-test' },
      { signature: `v0=${'0'.repeat(64)}` },
    );
    expect(zero.status).toBe(401);
    const other = await postSlashCommand(url, 'not-the-secret', { text: 'upgrade-test' });
    expect(other.status).toBe(401);
    const unsigned = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'command=%2Fhv&text=status&team_id=T1&user_id=U1&trigger_id=x',
    });
    expect(unsigned.status).toBe(401);
    await settle();
    expect(bus.submits.length).toBe(before);
  });

  it('a 6-minute-old timestamp gets 401, signed correctly or not', async () => {
    const before = bus.submits.length;
    const old = Math.floor(Date.now() / 1000) - 6 * 60;
    const r = await postSlashCommand(url, SIGNING_SECRET, { text: 'upgrade-test' }, { timestamp: old });
    expect(r.status).toBe(401);
    const click = await postInteractive(
      url,
      SIGNING_SECRET,
      { actions: [{ action_id: 'hv_confirm', value: 'tok' }] },
      { timestamp: old },
    );
    expect(click.status).toBe(401);
    await settle();
    expect(bus.submits.length).toBe(before);
    expect(bus.confirms.length).toBe(0);
  });

  it('a signed confirm click reaches bus.confirm with its evidence; the bus answers it', async () => {
    const r = await postInteractive(url, SIGNING_SECRET, {
      actions: [{ action_id: 'hv_confirm', value: 'tok-1' }],
      message: { type: 'message', ts: '1.000001', text: 'Confirm hv rollback?' },
    });
    expect(r.status).toBe(200);
    const c = await until(() => bus.confirms[0], 'the click');
    expect(c.token).toBe('tok-1');
    expect(c.evidence?.scheme).toBe('slack-v0');
    // Unknown token: refused by the engine (not dropped as forged), i.e. the signature held.
    expect(c.outcome).toMatchObject({
      kind: 'refused',
      reason: expect.stringMatching(/unknown|not one hv issued/),
    });
  });

  it('a 4 MB Content-Length gets 413 at once, before a byte of the body is read', async () => {
    const verifies = bus.verifies;
    const r = await rawRequest(
      port,
      'POST /slack/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n' +
        `content-length: ${4 * 1024 * 1024}\r\n\r\n`,
      { giveUpMs: 5_000 },
    );
    // No body was sent at all: an answer means the server did not wait for one.
    expect(r.ended).toBe('end');
    expect(r.response).toMatch(/^HTTP\/1\.1 413/);
    expect(r.closedAfterMs).toBeLessThan(1_000);
    expect(bus.verifies).toBe(verifies);
  });

  it('a chunked body is cut off as it passes the limit', async () => {
    const before = bus.submits.length;
    const verifies = bus.verifies;
    const r = await rawRequest(
      port,
      'POST /slack/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n' +
        'transfer-encoding: chunked\r\nx-slack-signature: v0=00\r\nx-slack-request-timestamp: 1\r\n\r\n',
      { chunk: Buffer.alloc(16 * 1024, 'a'), everyMs: 5, maxBytes: 4 * 1024 * 1024, chunked: true },
    );
    expect(r.ended).not.toBe('timeout');
    // Cut well before the 4 MB were sent (the limit is 100 KB; socket buffers hold some more).
    expect(r.bytesWritten).toBeLessThan(1024 * 1024);
    if (r.response) expect(r.response).toMatch(/^HTTP\/1\.1 413/);
    await settle();
    expect(bus.verifies).toBe(verifies);
    expect(bus.submits.length).toBe(before);
  });

  it('a slow sender is dropped when the headers take longer than 5 s', async () => {
    const r = await rawRequest(port, 'POST /slack/events HTTP/1.1\r\nhost: x\r\n', {
      chunk: Buffer.from('x-slow: 1\r\n'),
      everyMs: 1_000,
      giveUpMs: 20_000,
    });
    expect(r.ended).not.toBe('timeout');
    expect(r.closedAfterMs).toBeGreaterThan(4_000);
    expect(r.closedAfterMs).toBeLessThan(9_000);
    expect(r.response).toMatch(/^HTTP\/1\.1 408/);
  }, 30_000);

  it('only POST /slack/events: other paths 404, other methods 405', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x' })).status).toBe(404);
    expect((await fetch(url)).status).toBe(405);
  });
});
