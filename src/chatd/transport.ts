/**
 * The transport under the engine ⇄ chat process protocol: a `Link` carries whole messages both
 * ways. Today it is a Unix stream socket with one JSON object a line (`socketLink`); a broker
 * between hosts can implement the same interface without touching either side's logic.
 */
import type { Socket } from 'node:net';
import { MAX_LINE_BYTES } from './protocol.js';

export interface Link {
  /** Send one message; false when the link is closed (nothing was sent). */
  send(message: object): boolean;
  /** Each whole message as received (its text, not yet validated). */
  onMessage(handler: (text: string) => void): void;
  /** Once, when the link is gone (peer closed, error, oversize message). */
  onClose(handler: (reason: string) => void): void;
  close(reason?: string): void;
  readonly closed: boolean;
}

/** Newline-delimited JSON over a stream socket; a line over MAX_LINE_BYTES closes the link. */
export function socketLink(socket: Socket, maxLine = MAX_LINE_BYTES): Link {
  const onMessage: ((text: string) => void)[] = [];
  const onClose: ((reason: string) => void)[] = [];
  let closed = false;
  let why = 'closed';
  let chunks: Buffer[] = [];
  let pending = 0;

  const finish = (reason: string) => {
    if (closed) return;
    closed = true;
    why = reason;
    socket.destroy();
    for (const h of onClose) h(why);
  };

  socket.on('data', (data: Buffer) => {
    let start = 0;
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      const piece = data.subarray(start, nl);
      start = nl + 1;
      if (pending + piece.length > maxLine) return finish('message too long');
      const line = Buffer.concat([...chunks, piece]).toString('utf8');
      chunks = [];
      pending = 0;
      if (line.trim()) for (const h of onMessage) h(line);
      if (closed) return;
    }
    const rest = data.subarray(start);
    if (rest.length) {
      pending += rest.length;
      if (pending > maxLine) return finish('message too long');
      chunks.push(Buffer.from(rest));
    }
  });
  socket.on('error', (e) => finish(`socket error: ${e.message}`));
  socket.on('close', () => finish('peer closed the connection'));

  return {
    send(message) {
      if (closed || socket.destroyed) return false;
      socket.write(`${JSON.stringify(message)}\n`);
      return true;
    },
    onMessage: (h) => void onMessage.push(h),
    onClose(h) {
      if (closed) h(why);
      else onClose.push(h);
    },
    close: (reason = 'closed') => finish(reason),
    get closed() {
      return closed;
    },
  };
}

/**
 * Calls over a link: `call(message)` numbers it and resolves with the peer's answer carrying the
 * same `call`; every pending call fails when the link closes or the timeout passes.
 */
export class Calls<A extends { call: number }> {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (a: A) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();

  constructor(private readonly link: () => Link | undefined) {}

  call<M extends object>(message: M, timeoutMs: number): Promise<A> {
    const link = this.link();
    const call = this.next++;
    return new Promise<A>((resolve, reject) => {
      if (!link?.send({ ...message, call })) {
        reject(new Error('the chat link is not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(call);
        reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(call, { resolve, reject, timer });
    });
  }

  /** An answer arrived; false when no call waits for it. */
  answer(a: A): boolean {
    const p = this.pending.get(a.call);
    if (!p) return false;
    this.pending.delete(a.call);
    clearTimeout(p.timer);
    p.resolve(a);
    return true;
  }

  /** The link closed: every waiting call fails. */
  failAll(reason: string): void {
    for (const [call, p] of this.pending) {
      this.pending.delete(call);
      clearTimeout(p.timer);
      p.reject(new Error(reason));
    }
  }
}
