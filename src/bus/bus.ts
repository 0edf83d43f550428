import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCommand as defaultFindCommand } from '../../commands/index.js';
import type { AnyCommand, CommandResult } from '../../commands/types.js';
import type { Actor } from '../audit.js';
import { parseCommandArgs, validateArgs } from '../cli/args.js';
import { Exit, errorMessage } from '../errors.js';
import { execute } from '../execute.js';
import type { Services } from '../services.js';
import { actorKey, atLeast, roleOf } from './authorise.js';
import { type OperationRecord, OperationStore, type PendingConfirmation } from './operations.js';
import { RateLimiter } from './rate-limit.js';
import type {
  CommandBus,
  CommandRequest,
  ConfirmationPrompt,
  Reply,
  ReplyFactory,
  SubmitOutcome,
} from './types.js';

export const NOT_AUTHORISED = 'not authorised';

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

export interface CommandBusOptions {
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
  /** Command lookup (default: the registry in commands/index.ts). */
  findCommand?: (name: string) => AnyCommand | undefined;
}

/** The command bus with the daemon-side extras: restart recovery, test hooks, shutdown. */
export interface HostedCommandBus extends CommandBus {
  /**
   * After a daemon restart: deliver results of operations that finished while nobody listened and
   * follow the ones still running. Returns how many operations were picked up.
   */
  resumePending(replyFor: ReplyFactory): number;
  /** Resolves when no operation is being followed (tests). */
  idle(): Promise<void>;
  /** Stop following operations (detached children keep running; resumePending picks them up). */
  stop(): Promise<void>;
  readonly store: OperationStore;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

function newId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').replace(/\..*$/, '');
  return `op-${stamp}-${randomBytes(4).toString('hex')}`;
}

function alive(pid: number | undefined, id: string): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // Guard against pid reuse: the child's command line names its operation.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(id);
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** `systemd-run --scope …` when running as root inside a systemd service, else nothing. */
export function systemdScopePrefix(env: NodeJS.ProcessEnv): string[] {
  if (!env.INVOCATION_ID || process.getuid?.() !== 0 || !existsSync('/run/systemd/system')) return [];
  return ['systemd-run', '--scope', '--quiet', '--collect', '--unit=hv-{id}', '--'];
}

/** Create the bus the daemon hosts; chat and email adapters submit to it. */
export function createCommandBus(services: Services, opts: CommandBusOptions = {}): HostedCommandBus {
  const { config, audit, now } = services;
  const chat = config.chatops;
  const store = new OperationStore(services.paths.dir);
  const limiter = new RateLimiter(chat.ratePerMinute, now);
  const find = opts.findCommand ?? defaultFindCommand;
  const pollMs = opts.pollMs ?? 250;
  const tasks = new Set<Promise<void>>();
  let stopped = false;

  let lane: Promise<void> = Promise.resolve();
  const takeTurn = (): Promise<void> => {
    const turn = lane.then(() => new Promise<void>((r) => setImmediate(r)));
    lane = turn;
    return turn;
  };

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

  const refuse = async (
    req: { actor: Actor; command: string; argv: string[]; id: string },
    reply: Reply,
    reason: string,
    auditReason: string,
  ): Promise<SubmitOutcome> => {
    audit.append({
      actor: req.actor,
      operation: req.command.slice(0, 64),
      args: { argv: req.argv },
      result: 'denied',
      requestId: req.id,
      details: { reason: auditReason },
    });
    await safely('refused', req.id, () => reply.refused(reason));
    return { kind: 'refused', reason };
  };

  const persistAddress = (rec: OperationRecord, reply: Reply) => {
    const addr = reply.address?.();
    if (addr && JSON.stringify(addr) !== JSON.stringify(rec.replyTo)) {
      rec.replyTo = addr;
      store.save(rec);
    }
  };

  const deliverResult = async (rec: OperationRecord, reply: Reply, result: CommandResult) => {
    for (let attempt = 0; !stopped; attempt++) {
      if (await safely('result', rec.id, () => reply.result(result))) {
        store.markReported(rec.id, now());
        services.log('info', 'operation reported', { operation: rec.id, status: result.status });
        return;
      }
      if (attempt >= 9) {
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
      await sleep(Math.min(60_000, 1000 * 2 ** attempt));
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
    while (!stopped) {
      await forward();
      const result = store.readResult(rec.id);
      if (result) {
        await forward();
        await deliverResult(rec, reply, result);
        return;
      }
      const gone = child ? exited : !alive(rec.pid, rec.id);
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
          rec.pid = child.pid;
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
    let result: CommandResult;
    try {
      result = await execute(cmd, rec.args, {
        config,
        actor: rec.actor,
        services,
        confirmed: rec.confirmed,
        requestId: rec.requestId,
        progress: {
          step(name, detail) {
            void safely('progress', rec.id, () => reply.progress(name, detail));
          },
        },
      });
    } catch (e) {
      result = { status: 'error', exitCode: Exit.failed, message: errorMessage(e), data: {} };
    }
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
      rec.pid = child.pid;
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

  const bus: HostedCommandBus = {
    store,

    async submit(req: CommandRequest, reply: Reply): Promise<SubmitOutcome> {
      // What follows writes and fsyncs (claim, audit) synchronously: take turns, one request per
      // event-loop iteration, so that acknowledgements of other requests are never held up for long.
      await takeTurn();
      const keys = [req.id, ...(req.dedupeKeys ?? [])];
      const seen = store.claim(keys, now());
      if (seen) {
        services.log('info', 'duplicate request ignored', { request: req.id, operation: seen.operationId });
        return { kind: 'duplicate', operationId: seen.operationId };
      }
      const role = roleOf(req.actor, chat.roles);
      const settleRefused = (reason: string) => store.settle(keys, { outcome: `refused: ${reason}` }, now());
      if (!role) {
        settleRefused('unknown identity');
        return refuse(req, reply, `${NOT_AUTHORISED}.`, 'unknown identity');
      }
      const cmd = find(req.command);
      if (!cmd) {
        settleRefused('unknown command');
        return refuse(req, reply, `Unknown command "${req.command}"; try /hv help.`, 'unknown command');
      }
      if (cmd.cliOnly) {
        settleRefused('cli only');
        return refuse(
          req,
          reply,
          `"${cmd.name}" runs only from the shell on the host (hv ${cmd.name}).`,
          'cli only',
        );
      }
      if (!atLeast(role, cmd.role)) {
        settleRefused('role too low');
        return refuse(
          req,
          reply,
          `${NOT_AUTHORISED}: "${cmd.name}" needs the ${cmd.role} role.`,
          `needs ${cmd.role}, has ${role}`,
        );
      }
      const waitMs = limiter.take(actorKey(req.actor));
      if (waitMs > 0) {
        settleRefused('rate limited');
        return refuse(
          req,
          reply,
          `Too many commands: at most ${chat.ratePerMinute} a minute. Try again in ${Math.ceil(waitMs / 1000)} s.`,
          'rate limited',
        );
      }
      let args: Record<string, unknown>;
      try {
        args = validateArgs(cmd, parseCommandArgs(cmd, req.argv));
      } catch (e) {
        settleRefused('invalid arguments');
        return refuse(req, reply, errorMessage(e), 'invalid arguments');
      }
      audit.append({
        actor: req.actor,
        operation: cmd.name,
        args,
        result: 'allowed',
        requestId: req.id,
        details: { role, ...(cmd.confirm ? { confirmation: 'required' } : {}) },
      });
      if (cmd.confirm) {
        const needed = (chat.approvals as Record<string, number | undefined>)[cmd.name] ?? 1;
        const token = randomBytes(18).toString('base64url');
        const expiresAt = new Date(now().getTime() + chat.confirmTimeoutSec * 1000).toISOString();
        const pending: PendingConfirmation = {
          token,
          requestId: req.id,
          command: cmd.name,
          argv: req.argv,
          args,
          requester: req.actor,
          replyTo: reply.address?.() ?? req.replyTo,
          expiresAt,
          needed,
          approvers: [],
          approverActors: [],
        };
        store.saveConfirmation(pending);
        store.settle(keys, { outcome: 'needs-confirmation' }, now());
        const prompt: ConfirmationPrompt = {
          token,
          command: cmd.name,
          argv: req.argv,
          expiresAt,
          approvalsNeeded: needed,
          text:
            `Run \`hv ${[cmd.name, ...req.argv].join(' ')}\` on ${config.host}? ${cmd.summary}.` +
            (needed > 1 ? ` Needs ${needed} different admins to approve.` : ' An admin must confirm.') +
            ` Expires in ${Math.round(chat.confirmTimeoutSec / 60) || 1} min.`,
        };
        await safely('confirm', req.id, () => reply.confirm(prompt));
        return { kind: 'needs-confirmation', prompt };
      }
      const operationId = start(
        cmd,
        {
          requestId: req.id,
          command: cmd.name,
          argv: req.argv,
          args,
          actor: req.actor,
          replyTo: req.replyTo,
          confirmed: false,
        },
        keys,
        reply,
      );
      return { kind: 'accepted', operationId };
    },

    async confirm(token: string, actor: Actor, reply: Reply): Promise<SubmitOutcome> {
      const c = store.loadConfirmation(token);
      const base = {
        actor,
        command: c?.command ?? 'confirm',
        argv: c?.argv ?? [],
        id: c?.requestId ?? 'confirm',
      };
      if (!c)
        return refuse(
          base,
          reply,
          'This confirmation is unknown or was already used.',
          'unknown confirmation',
        );
      const cmd = find(c.command);
      // Confirmations and approvals count only from admins (SPEC: "admin plus an explicit confirmation").
      if (!atLeast(roleOf(actor, chat.roles), 'admin'))
        return refuse(
          base,
          reply,
          `${NOT_AUTHORISED}: only an admin can confirm this.`,
          'confirm by non-admin',
        );
      if (now().getTime() > Date.parse(c.expiresAt)) {
        store.takeConfirmation(token);
        return refuse(
          base,
          reply,
          `This confirmation expired at ${c.expiresAt}; run the command again.`,
          'confirmation expired',
        );
      }
      const key = actorKey(actor);
      if (c.approvers.includes(key)) {
        const left = c.needed - c.approvers.length;
        await safely('refused', c.requestId, () =>
          reply.refused(`You already approved; ${left} more admin${left === 1 ? '' : 's'} must approve.`),
        );
        return { kind: 'awaiting-approval', approvalsNeeded: left };
      }
      c.approvers.push(key);
      c.approverActors.push(actor);
      if (c.approvers.length < c.needed) {
        store.saveConfirmation(c);
        audit.append({
          actor,
          operation: c.command,
          args: c.args,
          result: 'approved',
          requestId: c.requestId,
          details: { approvals: c.approvers.length, needed: c.needed },
        });
        const left = c.needed - c.approvers.length;
        await safely('progress', c.requestId, () =>
          reply.progress(
            'waiting for approval',
            `approved by ${actor.display ?? actor.id}; ${left} more admin${left === 1 ? '' : 's'} must approve`,
          ),
        );
        return { kind: 'awaiting-approval', approvalsNeeded: left };
      }
      if (!cmd) return refuse(base, reply, `Unknown command "${c.command}".`, 'unknown command');
      if (!store.takeConfirmation(token)) return { kind: 'duplicate' };
      audit.append({
        actor,
        operation: c.command,
        args: c.args,
        result: 'confirmed',
        requestId: c.requestId,
        details: { requester: c.requester, approvedBy: c.approverActors.map(actorKey) },
      });
      const operationId = start(
        cmd,
        {
          requestId: c.requestId,
          command: c.command,
          argv: c.argv,
          args: c.args,
          actor: c.requester,
          replyTo: reply.address?.() ?? c.replyTo,
          confirmed: true,
        },
        [`${c.requestId}#confirmed`],
        reply,
      );
      return { kind: 'accepted', operationId };
    },

    async cancel(token: string, actor: Actor, reply?: Reply): Promise<void> {
      const c = store.loadConfirmation(token);
      const tell = async (reason: string) => {
        if (reply) await safely('refused', c?.requestId ?? 'cancel', () => reply.refused(reason));
      };
      if (!c) return tell('This confirmation is unknown or was already used.');
      const isRequester = actorKey(actor) === actorKey(c.requester);
      if (!isRequester && !atLeast(roleOf(actor, chat.roles), 'admin')) {
        audit.append({
          actor,
          operation: c.command,
          result: 'denied',
          requestId: c.requestId,
          details: { reason: 'cancel by non-admin' },
        });
        return tell(`${NOT_AUTHORISED}: only the requester or an admin can cancel this.`);
      }
      if (!store.takeConfirmation(token)) return tell('This confirmation is unknown or was already used.');
      audit.append({
        actor,
        operation: c.command,
        args: c.args,
        result: 'cancelled',
        requestId: c.requestId,
      });
    },

    resumePending(replyFor: ReplyFactory): number {
      store.prune(now());
      let n = 0;
      for (const rec of store.unreported()) {
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
  return bus;
}
