/**
 * Runs the chat process as the chat user when `hv daemon` supervises it (chatops.supervise =
 * "daemon"): spawned with that user's uid and gid and a minimal environment, its output forwarded
 * into the daemon's log, restarted with backoff when it exits. Its crash never touches the engine
 * or a running operation (those are separate processes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Services } from '../services.js';

const here = dirname(fileURLToPath(import.meta.url));

/** dist/bundle/hv-chat.mjs next to the bundle, else the compiled dist/src/chatd/chat-main.js. */
export function defaultChatEntry(): string {
  const candidates = [
    join(here, 'hv-chat.mjs'),
    join(here, 'chat-main.js'),
    join(here, '..', '..', 'bundle', 'hv-chat.mjs'),
    join(here, '..', '..', 'dist', 'bundle', 'hv-chat.mjs'),
  ];
  return candidates.find((c) => c.includes('/dist/') && existsSync(c)) ?? (candidates[3] as string);
}

/**
 * A small young generation: the chat process allocates little that lives long, and V8's default
 * (16 MB semi-spaces) costs resident memory a flood of requests would otherwise push up. The old
 * space is capped well above what it uses (~30 MB) so a leak ends in a restart, not a swapping host.
 */
export const CHAT_NODE_ARGS = (
  process.env.HV_CHAT_NODE_ARGS ?? '--max-semi-space-size=1 --max-old-space-size=160'
)
  .split(' ')
  .filter(Boolean);

export interface SupervisorOptions {
  services: Services;
  socketPath: string;
  uid: number;
  gid: number;
  home: string;
  entry?: string;
  nodePath?: string;
  /** First restart delay; doubles up to maxBackoffMs, back to the start after a minute of uptime. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

export class ChatSupervisor {
  private child: ChildProcess | undefined;
  private stopped = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  restarts = 0;

  constructor(private readonly opts: SupervisorOptions) {
    this.delay = opts.backoffMs ?? 500;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.stopped) return;
    const { services, socketPath, uid, gid, home } = this.opts;
    const entry = this.opts.entry ?? defaultChatEntry();
    const asRoot = process.getuid?.() === 0;
    const child = spawn(
      this.opts.nodePath ?? process.execPath,
      [...CHAT_NODE_ARGS, entry, '--socket', socketPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        // Nothing of the daemon's environment (credentials dir, tokens someone exported) goes along.
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          LANG: process.env.LANG ?? 'C.UTF-8',
          NODE_ENV: 'production',
          ...(process.env.JOURNAL_STREAM ? { HV_CHAT_JOURNAL: '1' } : {}),
        },
        ...(asRoot ? { uid, gid } : {}),
        cwd: '/',
      },
    );
    this.child = child;
    this.startedAt = Date.now();
    for (const stream of [child.stdout, child.stderr])
      if (stream)
        createInterface({ input: stream }).on('line', (line) =>
          services.log('info', 'chat process', { line: line.slice(0, 2000) }),
        );
    child.once('error', (e) => services.log('error', 'chat process could not start', { error: e.message }));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopped) return;
      if (Date.now() - this.startedAt > 60_000) this.delay = this.opts.backoffMs ?? 500;
      services.log('warn', 'chat process exited; restarting', {
        code,
        signal,
        inMs: this.delay,
      });
      this.restarts++;
      this.timer = setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, this.opts.maxBackoffMs ?? 30_000);
    });
    services.log('info', 'chat process started', { pid: child.pid, uid: asRoot ? uid : process.getuid?.() });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
