import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Exit, errorMessage } from '../errors.js';
import type { AnyCommand, CommandResult } from '../ports/command.js';
import { identityOf, isRunning } from '../process-identity.js';
import type { Services } from '../services.js';
import { actorKey } from './authorise.js';
import type { Keeper } from './keep.js';
import { type OperationRecord, type OperationStore, runRecorded } from './operations.js';
import type { Reply, ReplyFactory } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
/**
 * The compiled child entry: next to this module in dist/src/bus, or found from the esbuild bundle
 * (dist/bundle) or from the sources (vitest runs src/ directly).
 */
export function defaultChildEntry(): string {
  const candidates = [
    join(here, 'operation-child.js'),
    join(here, '..', 'src', 'bus', 'operation-child.js'),
    join(here, '..', '..', 'dist', 'src', 'bus', 'operation-child.js'),
  ];
  return candidates.find((c) => c.includes('/dist/') && existsSync(c)) ?? (candidates[2] as string);
}

export interface RunnerOptions {
  /** The config file the daemon loaded; the detached child loads the same one. */
  configPath?: string | null;
  /** `node` to run the child with. */
  nodePath?: string;
  /** The compiled operation-child.js. */
  childEntry?: string;
  /**
   * Words put before `node <child>`; `{id}` is replaced by the operation id. Default: when the
   * daemon runs as a systemd service as root, `systemd-run --scope --collect --unit hv-{id} --`, so
   * that the operation lives in its own scope and survives a restart of hv-daemon.service whatever
   * its KillMode (the module's `mixed` would SIGKILL a child left in the service's cgroup). When
   * systemd-run cannot be started, the child is spawned without it.
   */
  spawnPrefix?: string[];
  /** Environment of the child (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  /** How often the progress and result files of a running operation are read. */
  pollMs?: number;
  /** First pause before a result's delivery is tried again (doubles, at most 60 s). Default 1 s. */
  resultRetryMs?: number;
}

/**
 * A reply that failed because the platform could not be reached (the host is cut off, the chat
 * process is not connected), not because the platform refused it: such a result is retried for
 * up to UNREACHABLE_RETRY_MS, so that a FAILED after a dead-man revert reaches its thread once the
 * host is reachable again.
 */
const UNREACHABLE =
  /fetch failed|request error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|not connected|disconnected|no answer within/i;
const UNREACHABLE_RETRY_MS = 24 * 60 * 60 * 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

function newId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').replace(/\..*$/, '');
  return `op-${stamp}-${randomBytes(4).toString('hex')}`;
}

function alive(rec: OperationRecord): boolean {
  const { pid, id } = rec;
  // Boot id and start time (recorded at spawn) rule out a previous boot and a reused PID.
  if (!pid || !isRunning(rec)) return false;
  try {
    // Guard against pid reuse: the child's command line names its operation.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(id);
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** Record the child that runs `rec`: its PID, boot id and start time (exec keeps the latter). */
function setChild(rec: OperationRecord, child: ChildProcess): void {
  const id = child.pid ? identityOf(child.pid) : undefined;
  rec.pid = id?.pid;
  rec.bootId = id?.bootId;
  rec.startTime = id?.startTime;
}

/** `systemd-run --scope …` when running as root inside a systemd service, else nothing. */
export function systemdScopePrefix(env: NodeJS.ProcessEnv): string[] {
  if (!env.INVOCATION_ID || process.getuid?.() !== 0 || !existsSync('/run/systemd/system')) return [];
  return ['systemd-run', '--scope', '--quiet', '--collect', '--unit=hv-{id}', '--'];
}

/** Runs accepted operations: in-process (read-only) or in a detached child it follows. */
export interface OperationRunner {
  start(
    cmd: AnyCommand,
    fields: Omit<OperationRecord, 'id' | 'mode' | 'createdAt' | 'pid'>,
    keys: string[],
    reply: Reply,
  ): string;
  /** A Reply call that must not break the bus when the platform is down. */
  safely(what: string, id: string, f: () => Promise<void>): Promise<boolean>;
  resume(replyFor: ReplyFactory): number;
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function createOperationRunner(
  services: Services,
  store: OperationStore,
  opts: RunnerOptions = {},
  /** Shows a confirmation window of a followed operation in its thread (src/bus/keep.ts). */
  keeper?: Pick<Keeper, 'poll'>,
): OperationRunner {
  const { now } = services;
  const pollMs = opts.pollMs ?? 250;
  const tasks = new Set<Promise<void>>();
  let stopped = false;

  const track = (p: Promise<void>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p)).catch(() => {});
  };

  /** A Reply call that must not break the bus when the platform is down. */
  const safely = async (what: string, id: string, f: () => Promise<void>): Promise<boolean> => {
    try {
      await f();
      return true;
    } catch (e) {
      services.log('warn', 'reply failed', { what, operation: id, error: errorMessage(e) });
      return false;
    }
  };

  const persistAddress = (rec: OperationRecord, reply: Reply) => {
    const addr = reply.address?.();
    if (addr && JSON.stringify(addr) !== JSON.stringify(rec.replyTo)) {
      rec.replyTo = addr;
      store.save(rec);
    }
  };

  const deliverResult = async (rec: OperationRecord, reply: Reply, result: CommandResult) => {
    const since = now().getTime();
    const base = opts.resultRetryMs ?? 1000;
    for (let attempt = 0; !stopped; attempt++) {
      let error = '';
      try {
        await reply.result(result);
        store.markReported(rec.id, now());
        services.log('info', 'operation reported', { operation: rec.id, status: result.status });
        return;
      } catch (e) {
        error = errorMessage(e);
        services.log('warn', 'reply failed', { what: 'result', operation: rec.id, error });
      }
      const unreachable = UNREACHABLE.test(error) && now().getTime() - since < UNREACHABLE_RETRY_MS;
      if (attempt >= 9 && !unreachable) {
        // About 10 minutes of trying: the platform refuses this reply for good (channel gone, bot
        // removed). The outcome stays in the audit log and the operation's files.
        store.markReported(rec.id, now());
        services.log('error', 'operation result could not be delivered', {
          operation: rec.id,
          status: result.status,
          channel: rec.replyTo.channel,
        });
        return;
      }
      await sleep(Math.min(60_000, base * 2 ** Math.min(attempt, 16)));
    }
  };

  /** Follow a detached child: forward its progress lines, then its result. */
  const follow = async (rec: OperationRecord, reply: Reply, first?: ChildProcess) => {
    let offset = 0;
    let exited = false;
    let exitCode: number | null = null;
    let child = first;
    let retried = false;
    const watch = (c: ChildProcess) => {
      c.once('exit', (code) => {
        exited = true;
        exitCode = code;
      });
      c.once('error', () => {
        exited = true;
      });
    };
    if (child) watch(child);
    const forward = async () => {
      const p = store.readProgress(rec.id, offset);
      offset = p.offset;
      for (const line of p.lines)
        await safely('progress', rec.id, () => reply.progress(line.step, line.detail));
      if (p.lines.length) persistAddress(rec, reply);
    };
    let offered: string | undefined;
    while (!stopped) {
      await forward();
      if (keeper) offered = await keeper.poll(rec, reply, offered);
      const result = store.readResult(rec.id);
      if (result) {
        await forward();
        // The window is closed by now (the operation waited for it): its button goes first.
        if (keeper && offered) await keeper.poll(rec, reply, offered);
        await deliverResult(rec, reply, result);
        return;
      }
      const gone = child ? exited : !alive(rec);
      if (gone) {
        await sleep(50);
        if (store.readResult(rec.id)) continue;
        // The wrapper (systemd-run) failed before the operation started: run it without.
        if (child && !retried && !store.wasStarted(rec.id)) {
          retried = true;
          exited = false;
          services.log('warn', 'operation wrapper failed; starting it directly', {
            operation: rec.id,
            exitCode,
          });
          child = spawnChild(rec, false);
          setChild(rec, child);
          store.save(rec);
          watch(child);
          continue;
        }
        const lost: CommandResult = {
          status: 'error',
          exitCode: Exit.failed,
          message: `${rec.command} ended without a result${exitCode !== null ? ` (exit code ${exitCode})` : ''}; see ${store.logPath(rec.id)} and the operation log`,
          data: { operationId: rec.id },
        };
        store.writeResult(rec.id, lost);
        continue;
      }
      await sleep(pollMs);
    }
  };

  const spawnChild = (rec: OperationRecord, withPrefix = true): ChildProcess => {
    const entry = opts.childEntry ?? defaultChildEntry();
    const prefix = withPrefix
      ? (opts.spawnPrefix ?? systemdScopePrefix(opts.env ?? process.env)).map((w) =>
          w.replaceAll('{id}', rec.id),
        )
      : [];
    const words = [
      ...prefix,
      opts.nodePath ?? process.execPath,
      entry,
      '--operation',
      rec.id,
      ...(opts.configPath ? ['--config', opts.configPath] : []),
    ];
    const out = openSync(store.logPath(rec.id), 'a', 0o600);
    try {
      const child = spawn(words[0] as string, words.slice(1), {
        detached: true,
        stdio: ['ignore', out, out],
        env: opts.env ?? process.env,
      });
      child.on('error', (e) =>
        services.log('error', 'operation spawn failed', { operation: rec.id, error: e.message }),
      );
      child.unref();
      return child;
    } finally {
      closeSync(out);
    }
  };

  const runInline = async (rec: OperationRecord, cmd: AnyCommand, reply: Reply) => {
    const result = await runRecorded(cmd, rec, services, (name, detail) => {
      void safely('progress', rec.id, () => reply.progress(name, detail));
    });
    try {
      await reply.result(result);
    } catch (e) {
      services.log('warn', 'reply failed', { what: 'result', operation: rec.id, error: errorMessage(e) });
    }
  };

  const start = (
    cmd: AnyCommand,
    fields: Omit<OperationRecord, 'id' | 'mode' | 'createdAt' | 'pid'>,
    keys: string[],
    reply: Reply,
  ): string => {
    const rec: OperationRecord = {
      ...fields,
      id: newId(now()),
      mode: cmd.exclusive || cmd.confirm ? 'child' : 'inline',
      createdAt: now().toISOString(),
    };
    // Inline (read-only, quick) operations are not resumable: no record, just the claim.
    if (rec.mode === 'child') store.save(rec);
    store.settle(keys, { operationId: rec.id, outcome: 'accepted' }, now());
    services.log('info', 'operation accepted', {
      operation: rec.id,
      command: cmd.name,
      actor: actorKey(rec.actor),
    });
    if (rec.mode === 'inline') {
      track(runInline(rec, cmd, reply));
    } else {
      const child = spawnChild(rec);
      setChild(rec, child);
      store.save(rec);
      track(
        (async () => {
          await safely('progress', rec.id, () => reply.progress('started', `operation ${rec.id}`));
          persistAddress(rec, reply);
          await follow(rec, reply, child);
        })(),
      );
    }
    return rec.id;
  };

  return {
    start,
    safely,

    resume(replyFor: ReplyFactory): number {
      store.prune(now());
      let n = 0;
      const unreadable = (error: string) =>
        services.log('error', 'operation record unreadable; not resumed', { error });
      for (const rec of store.unreported(unreadable)) {
        const reply = replyFor(rec.replyTo);
        if (!reply) {
          services.log('warn', 'no adapter for operation reply', {
            operation: rec.id,
            channel: rec.replyTo.channel,
          });
          continue;
        }
        n++;
        services.log('info', 'operation resumed', { operation: rec.id, command: rec.command });
        if (rec.mode === 'inline' && !store.readResult(rec.id)) {
          store.writeResult(rec.id, {
            status: 'error',
            exitCode: Exit.failed,
            message: `${rec.command} was interrupted by a daemon restart; run it again`,
            data: { operationId: rec.id },
          });
        }
        track(follow(rec, reply));
      }
      return n;
    },

    async idle() {
      while (tasks.size) await Promise.allSettled([...tasks]);
    },

    async stop() {
      stopped = true;
      await Promise.allSettled([...tasks]);
    },
  };
}
