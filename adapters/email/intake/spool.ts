import { randomBytes } from 'node:crypto';
import { chownSync, type FSWatcher, readdirSync, readFileSync, rmSync, watch } from 'node:fs';
import { join } from 'node:path';
import { makeDir, writeFileAtomic } from '../../../src/fs/atomic.js';

/** The queue `hv email-intake` fills and the chat process empties: `<chatops.stateDir>/mail-spool`. */
export const spoolDir = (stateDir: string) => join(stateDir, 'mail-spool');

/** A queued message's file name: sorts in arrival order. */
const SPOOLED = /^\d{13}\.[0-9a-f]{16}\.eml$/;

/**
 * Queue one message durably: temp file, fsync, rename, fsync of the dir (as src/fs/atomic.ts), so a
 * crash or power loss after exit 0 loses nothing. Mode 0600 in a 0700 dir. With `owner` (root
 * queueing for the chat user, e.g. an MTA pipe running as root) the dirs and the file are the
 * owner's before the file appears under its final name: the chat process must read and remove it.
 * Returns the path.
 */
export function spool(
  stateDir: string,
  raw: Buffer,
  now = Date.now(),
  owner?: { uid: number; gid: number },
): string {
  const dir = spoolDir(stateDir);
  makeDir(dir, 0o700);
  if (owner) for (const d of [stateDir, dir]) chownSync(d, owner.uid, owner.gid);
  const name = `${String(now).padStart(13, '0')}.${randomBytes(8).toString('hex')}.eml`;
  const path = join(dir, name);
  // Temp file, fsync, rename, fsync of the dir: a message is queued whole or not at all.
  writeFileAtomic(path, raw, 0o600, 0o700, owner);
  return path;
}

/** A source of mail the intake pipeline reads; `done()` removes it from its queue. */
export interface MailSource {
  start(onMail: (m: { raw: Buffer; done(): Promise<void> }) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The spool as a mail source: every queued message, oldest first, one at a time; then new ones as
 * they arrive (fs.watch, and a scan every `scanMs` in case an event was missed). A message whose
 * handler throws stays queued and is tried again at the next scan.
 */
export function spoolSource(
  stateDir: string,
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void,
  scanMs = 5_000,
): MailSource {
  const dir = spoolDir(stateDir);
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const drain = async (onMail: Parameters<MailSource['start']>[0]) => {
    const names = readdirSync(dir)
      .filter((n) => SPOOLED.test(n))
      .sort();
    for (const name of names) {
      if (stopped) return;
      const path = join(dir, name);
      let raw: Buffer;
      try {
        raw = readFileSync(path);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // ENOENT: taken meanwhile. Anything else (EACCES: queued by another user) would be skipped
        // silently for ever without a word.
        if (code !== 'ENOENT')
          log('warn', 'spooled mail cannot be read; kept for the next scan', {
            file: name,
            error: code ?? (e as Error).message,
            hint: 'the spool must be owned by chatops.user; run hv email-intake as that user or as root',
          });
        continue;
      }
      try {
        await onMail({ raw, done: async () => rmSync(path, { force: true }) });
      } catch (e) {
        log('warn', 'spooled mail not handled; kept for the next scan', {
          file: name,
          error: (e as Error).message,
        });
      }
    }
  };

  return {
    async start(onMail) {
      makeDir(dir, 0o700);
      stopped = false;
      const scan = () => {
        if (stopped) return;
        if (running) {
          again = true;
          return;
        }
        running = (async () => {
          do {
            again = false;
            await drain(onMail).catch((e: Error) =>
              log('error', 'mail spool scan failed', { error: e.message }),
            );
          } while (again && !stopped);
        })().finally(() => {
          running = undefined;
        });
      };
      watcher = watch(dir, () => scan());
      watcher.on('error', (e) => log('warn', 'mail spool watch failed; scanning only', { error: e.message }));
      timer = setInterval(scan, scanMs);
      timer.unref();
      scan();
      await running;
    },
    async stop() {
      stopped = true;
      watcher?.close();
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
