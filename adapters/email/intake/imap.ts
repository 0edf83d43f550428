import { ImapFlow } from 'imapflow';
import type { ImapSettings } from './imap-schema.js';
import type { IncomingMail, MailSource } from './source.js';

/** The keyword a processed message carries (with \Seen) before it is moved out of the mailbox. */
export const PROCESSED_KEYWORD = '$HvProcessed';

export interface ImapSourceContext {
  /** Reads the password file (at each connect, so a rotated password is picked up). */
  readSecret(path: string): string;
  log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** The chat process may not write it; the source keeps no state of its own (the server does). */
  stateDir: string;
}

export interface ImapSourceOptions {
  /** First reconnect delay; doubles per failure up to `maxBackoffMs` (defaults 1 s and 5 min). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;

/** Why a connection failed, in words an admin can act on (never the password). */
function describe(e: unknown, s: ImapSettings): { msg: string; fields: Record<string, unknown> } {
  const err = e as {
    message?: string;
    code?: string;
    authenticationFailed?: boolean;
    responseText?: string;
    tlsFailed?: boolean;
  };
  const where = { host: s.host, port: s.port, user: s.user };
  if (err.authenticationFailed)
    return {
      msg: 'imap login refused; check user and the password in passwordFile',
      fields: { ...where, passwordFile: s.passwordFile, response: err.responseText },
    };
  if (err.tlsFailed)
    return {
      msg: 'imap TLS failed; check secure/port, or that the server offers STARTTLS',
      fields: { ...where, error: err.message },
    };
  return {
    msg: 'imap connection failed; retrying',
    fields: { ...where, code: err.code, error: err.message ?? String(e), response: err.responseText },
  };
}

/**
 * Command mail from an IMAP mailbox (imapflow). Every message in `mailbox` without the
 * `$HvProcessed` keyword is handed to `onMail`, one at a time, oldest first; its `done()` adds
 * \Seen and `$HvProcessed` and moves it to `processedMailbox` (created when missing), so neither a
 * second round nor a restart hands it over again. A message flagged but not yet moved (a crash in
 * between) is moved on the next round without being handed over. New mail is noticed through IDLE
 * where the server has it, and by a check every `pollSec` in any case; connection failures are
 * logged and retried with backoff, never thrown.
 */
export function imapSource(
  settings: ImapSettings,
  ctx: ImapSourceContext,
  opts: ImapSourceOptions = {},
): MailSource {
  const s = settings;
  const minBackoff = opts.minBackoffMs ?? 1_000;
  const maxBackoff = opts.maxBackoffMs ?? 300_000;
  let stopped = true;
  let client: ImapFlow | undefined;
  let wake: (() => void) | undefined;
  /** New mail was announced since the last round started (it may have missed it). */
  let kicked = false;
  const poke = () => {
    kicked = true;
    wake?.();
  };
  let loop: Promise<void> | undefined;
  /** UIDs whose handler threw, and when they may be tried again (not on every IDLE wake-up). */
  const failed = new Map<number, number>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (wake === done) wake = undefined;
        resolve();
      }
      wake = done;
    });

  function connection(): ImapFlow {
    const loopback = LOOPBACK.test(s.host);
    return new ImapFlow({
      host: s.host,
      port: s.port,
      secure: s.secure,
      // Never send the password in clear text off this machine: STARTTLS or nothing.
      doSTARTTLS: s.secure ? undefined : !loopback,
      auth: { user: s.user, pass: ctx.readSecret(s.passwordFile) },
      logger: false,
      clientInfo: { name: 'hv' },
      connectionTimeout: 30_000,
      greetingTimeout: 15_000,
      // IDLE soon after the last command (the default waits 15 s), so new mail is seen at once.
      autoIdleDelay: 1_000,
      // Restart IDLE now and then: NAT boxes drop connections that are silent for long.
      maxIdleTime: 240_000,
      // A single message never needs more than this in memory (larger ones: header only).
      maxLiteralSize: Math.max(s.maxBytes, 1024 * 1024) + 64 * 1024,
    });
  }

  /** Moves messages that carry the keyword; hands over the rest. */
  async function round(c: ImapFlow, onMail: (m: IncomingMail) => Promise<void>): Promise<void> {
    const leftovers = (await c.search({ keyword: PROCESSED_KEYWORD }, { uid: true })) || [];
    if (leftovers.length) await c.messageMove(leftovers.join(','), s.processedMailbox, { uid: true });
    const uids = (await c.search({ unKeyword: PROCESSED_KEYWORD }, { uid: true })) || [];
    const now = Date.now();
    for (const uid of uids.sort((a, b) => a - b)) {
      if (stopped || c !== client) return;
      if ((failed.get(uid) ?? 0) > now) continue;
      const meta = await c.fetchOne(String(uid), { uid: true, size: true }, { uid: true });
      if (!meta) continue; // expunged meanwhile
      const size = meta.size ?? 0;
      const truncated = size > s.maxBytes;
      const msg = await c.fetchOne(
        String(uid),
        truncated ? { uid: true, headers: true } : { uid: true, source: true },
        { uid: true },
      );
      if (!msg) continue;
      const raw = (truncated ? msg.headers : msg.source) ?? Buffer.alloc(0);
      const ref = `imap:${s.mailbox}/${uid}`;
      if (truncated)
        ctx.log('warn', 'imap message over maxBytes; handing over its header only', { ref, size });
      let finished = false;
      const done = async () => {
        if (finished) return;
        await c.messageFlagsAdd(String(uid), ['\\Seen', PROCESSED_KEYWORD], { uid: true });
        await c.messageMove(String(uid), s.processedMailbox, { uid: true });
        finished = true;
        failed.delete(uid);
      };
      try {
        await onMail({ raw, size, truncated, ref, done });
      } catch (e) {
        failed.set(uid, Date.now() + s.pollSec * 1000);
        ctx.log('warn', 'imap message not handled; it stays for a later round', {
          ref,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  /** One connection, until it closes or the source stops; returns the error that closed it. */
  async function session(onMail: (m: IncomingMail) => Promise<void>): Promise<Error | undefined> {
    const c = connection();
    client = c;
    // imapflow emits at most one 'error' and then 'close'; both end this session.
    let closed = false;
    let lastError: Error | undefined;
    c.on('error', (e: Error) => {
      lastError = e;
    });
    c.on('close', () => {
      closed = true;
      wake?.();
    });
    c.on('exists', poke);
    try {
      await c.connect();
      const boxes = await c.list();
      if (!boxes.some((b) => b.path === s.processedMailbox)) {
        await c.mailboxCreate(s.processedMailbox);
        ctx.log('info', 'imap mailbox created for processed mail', { mailbox: s.processedMailbox });
      }
      await c.mailboxOpen(s.mailbox);
      ctx.log('info', 'imap intake connected', {
        host: s.host,
        mailbox: s.mailbox,
        idle: c.capabilities.has('IDLE'),
      });
      backoff = minBackoff;
      while (!stopped && !closed) {
        kicked = false;
        await round(c, onMail);
        if (stopped || closed) break;
        // IDLE runs by itself while the client waits (imapflow's auto-IDLE); an EXISTS wakes us.
        if (!kicked) await sleep(s.pollSec * 1000);
      }
      return lastError;
    } finally {
      if (client === c) client = undefined;
      if (!closed) await c.logout().catch(() => c.close());
    }
  }

  let backoff = minBackoff;

  async function run(onMail: (m: IncomingMail) => Promise<void>): Promise<void> {
    while (!stopped) {
      try {
        const lastError = await session(onMail);
        if (stopped) return;
        ctx.log('warn', 'imap connection closed; reconnecting', {
          host: s.host,
          port: s.port,
          error: lastError?.message,
        });
      } catch (e) {
        if (stopped) return;
        const d = describe(e, s);
        ctx.log('error', d.msg, { ...d.fields, retryInMs: backoff });
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  }

  return {
    async start(onMail) {
      if (!stopped) throw new Error('imap source already started');
      stopped = false;
      backoff = minBackoff;
      loop = run(onMail);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      wake?.();
      // The current message finishes (its done() needs the connection); a hung connect or
      // command is cut after a few seconds.
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5_000);
      });
      await Promise.race([loop, cut]);
      clearTimeout(timer);
      client?.close();
      await loop;
      loop = undefined;
    },
  };
}
