import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatMessage, decode, EngineMessage } from '../../src/chatd/protocol.js';
import { type Link, socketLink } from '../../src/chatd/transport.js';

/** The engine ⇄ chat process wire format, over a real Unix socket pair. */
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function pair(maxLine?: number): Promise<{ server: Link; raw: Socket; close: () => void }> {
  dir = mkdtempSync(join(tmpdir(), 'hv-link-'));
  const path = join(dir, 's.sock');
  let accepted: (s: Socket) => void = () => {};
  const got = new Promise<Socket>((r) => {
    accepted = r;
  });
  const srv = createServer((s) => accepted(s));
  await new Promise<void>((r) => srv.listen(path, () => r()));
  const raw = connect(path);
  const server = socketLink(await got, maxLine);
  return { server, raw, close: () => srv.close() };
}

describe('engine ⇄ chat process protocol', () => {
  it('accepts exactly the listed messages; anything else is refused with the reason', () => {
    const ok = decode(ChatMessage, JSON.stringify({ t: 'hello', v: 1, pid: 42 }));
    expect(ok).toEqual({ t: 'hello', v: 1, pid: 42 });
    expect(decode(ChatMessage, '{not json')).toBe('not JSON');
    expect(decode(ChatMessage, JSON.stringify({ t: 'run-shell', argv: ['rm'] }))).toMatch(/^invalid message/);
    // An extra key (e.g. a smuggled config path) is refused, not ignored.
    const submit = {
      t: 'submit',
      call: 1,
      replyId: 'r',
      request: {
        id: 'x',
        command: 'status',
        argv: [],
        actor: { channel: 'slack', id: 'T:U' },
        replyTo: { channel: 'slack', data: {} },
      },
    };
    expect(typeof decode(ChatMessage, JSON.stringify(submit))).toBe('object');
    expect(
      decode(ChatMessage, JSON.stringify({ ...submit, request: { ...submit.request, config: '/tmp/evil' } })),
    ).toMatch(/invalid message: request/);
    expect(
      decode(
        ChatMessage,
        JSON.stringify({ ...submit, request: { ...submit.request, argv: Array(40).fill('a') } }),
      ),
    ).toMatch(/argv/);
    // The chat process accepts only what the engine sends.
    expect(decode(EngineMessage, JSON.stringify({ t: 'hello', v: 1, pid: 1 }))).toMatch(/^invalid message/);
  });

  it('frames one message a line, across chunk boundaries; an over-long line closes the link', async () => {
    const { server, raw, close } = await pair(1024);
    const seen: string[] = [];
    server.onMessage((t) => seen.push(t));
    const closed = new Promise<string>((r) => server.onClose(r));
    raw.write('{"a":');
    raw.write('1}\n{"b":2}\n{"c"');
    raw.write(':3}\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
    raw.write(`${'x'.repeat(2000)}`);
    expect(await closed).toBe('message too long');
    expect(server.send({ t: 'x' })).toBe(false);
    raw.destroy();
    close();
  });

  it('confirmation windows: reconnect (engine), connected and keep (chat process), the window notice of a reply', () => {
    expect(decode(EngineMessage, JSON.stringify({ t: 'reconnect', window: 'w1' }))).toEqual({
      t: 'reconnect',
      window: 'w1',
    });
    const connected = { t: 'connected', channel: 'slack', at: new Date().toISOString(), detail: 'hello' };
    expect(typeof decode(ChatMessage, JSON.stringify(connected))).toBe('object');
    expect(decode(ChatMessage, JSON.stringify({ ...connected, detail: 'x'.repeat(501) }))).toMatch(/detail/);
    expect(decode(ChatMessage, JSON.stringify({ ...connected, window: 'w1' }))).toMatch(/^invalid message/);
    const keep = {
      t: 'keep',
      call: 3,
      replyId: 'r',
      token: 'tok',
      actor: { channel: 'slack', id: 'T:U' },
      replyTo: { channel: 'slack', data: {} },
    };
    expect(typeof decode(ChatMessage, JSON.stringify(keep))).toBe('object');
    const reply = (notice: Record<string, unknown>) =>
      decode(
        EngineMessage,
        JSON.stringify({
          t: 'reply',
          call: 4,
          address: { channel: 'slack', data: {} },
          do: { method: 'window', notice },
        }),
      );
    const notice = {
      state: 'open',
      windowId: 'w1',
      deadline: '2026-01-01T00:00:00Z',
      text: 'open',
      token: 'k',
    };
    expect(typeof reply(notice)).toBe('object');
    expect(reply({ ...notice, state: 'gone' })).toMatch(/^invalid message/);
  });
});
