import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { actorLabel } from '../audit.js';
import { HV } from '../cli-name.js';
import { reconnectingChannels } from '../config/fields.js';
import type { ProbeConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { CommandContext } from '../ports/command.js';
import type { Runner } from '../proc.js';
import { selfIdentity } from '../process-identity.js';
import type { OperationDeps } from './check.js';
import { wantsText } from './confirm-text.js';
import {
  type ConfirmOrigin,
  type ConfirmWindow,
  confirmedBy,
  missingEvidence,
  openWindow,
  readEvidence,
  recordEvidence,
} from './confirm-window.js';
import { lastLines } from './nix.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How often the waiter looks for evidence (files other processes write). */
const POLL_MS = 300;
/** The pause between two rounds of probes that did not all pass. */
const PROBE_PAUSE_MS = 2000;

/** One probe's outcome, in words. */
export interface ProbeOutcome {
  name: string;
  ok: boolean;
  output: string;
}

export function probeName(p: ProbeConfig): string {
  return p.name ?? (p.tcp ? `tcp ${p.tcp}` : (p.argv ?? []).join(' '));
}

function tcpConnect(target: string, timeoutMs: number): Promise<string | undefined> {
  const at = target.lastIndexOf(':');
  const host = target.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.slice(at + 1));
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (err: string | undefined) => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => done(`no connection within ${timeoutMs / 1000} s`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (e) => done(errorMessage(e)));
  });
}

/** Run one probe: a command without a shell (exit 0 passes) or a TCP connect, with its timeout. */
export async function runProbe(runner: Runner, p: ProbeConfig): Promise<ProbeOutcome> {
  const name = probeName(p);
  const timeoutMs = p.timeoutSec * 1000;
  if (p.tcp) {
    const err = await tcpConnect(p.tcp, timeoutMs);
    return { name, ok: !err, output: err ? `connect to ${p.tcp} failed: ${err}` : `connected to ${p.tcp}` };
  }
  const r = await runner.run(p.argv as string[], { timeoutMs });
  const out = lastLines(`${r.stdout}${r.stderr ? `\n${r.stderr}` : ''}`.trim(), 5);
  const ok = r.exitCode === 0 && !r.timedOut && !r.spawnError;
  const why = r.spawnError ?? (r.timedOut ? `timed out after ${p.timeoutSec} s` : `exit ${r.exitCode}`);
  return { name, ok, output: ok ? out || 'exit 0' : `${why}${out ? `: ${out}` : ''}` };
}

/** Run every probe (in parallel: each has its own timeout). */
export async function runProbes(runner: Runner, probes: readonly ProbeConfig[]): Promise<ProbeOutcome[]> {
  return Promise.all(probes.map((p) => runProbe(runner, p)));
}

/** What the activation was, for the window. */
export interface Activation {
  operation: ConfirmWindow['operation'];
  activated: string;
  previousSystem: string;
  previousGeneration: number | undefined;
}

/** How a window ended. */
export type WindowOutcome =
  | { confirmed: true; by: string; window: ConfirmWindow }
  | { confirmed: false; reason: string; window: ConfirmWindow };

/** Who asks, from the command's context: what a window records about its origin. */
export function originOf(ctx: CommandContext): ConfirmOrigin {
  return {
    requester: actorLabel(ctx.actor),
    ...(ctx.requestId ? { requestId: ctx.requestId } : {}),
    chatChannels: reconnectingChannels(ctx.config.notify.channels, ctx.services.channels),
  };
}

/** Whether `apply.confirm` asks for a window at all (empty: off, behaviour as before). */
export function windowWanted(deps: Pick<OperationDeps, 'config'>): boolean {
  return deps.config.apply.confirm.length > 0;
}

/**
 * Open the window, persisted before anything waits on it, so that a crash or reboot inside it is
 * found by recovery (confirm-recovery.ts). The caller then waits (`waitForConfirmation`), or closes
 * it when the activation is undone for another reason (a failed health check).
 */
export function openConfirmation(deps: OperationDeps, act: Activation): ConfirmWindow {
  const { config, paths, now, log, progress } = deps;
  const { confirm, confirmWithinSec } = config.apply;
  const opened = now();
  const w: ConfirmWindow = {
    ...selfIdentity(),
    id: randomBytes(8).toString('hex'),
    operation: act.operation,
    ...(deps.origin?.requestId ? { requestId: deps.origin.requestId } : {}),
    requester: deps.origin?.requester ?? HV,
    openedAt: opened.toISOString(),
    deadline: new Date(opened.getTime() + confirmWithinSec * 1000).toISOString(),
    wants: [...confirm],
    chatChannels: confirm.includes('chat') ? [...(deps.origin?.chatChannels ?? [])] : [],
    activated: act.activated,
    previousSystem: act.previousSystem,
    ...(act.previousGeneration !== undefined ? { previousGeneration: act.previousGeneration } : {}),
  };
  openWindow(paths, w);
  crashPoint(`${act.operation}:window`);
  log.info('confirmation window open', { id: w.id, deadline: w.deadline, wants: w.wants.join(',') });
  progress.step(
    `confirmation window open until ${w.deadline} (${confirmWithinSec} s)`,
    `the activation is undone unless confirmed by ${wantsText(w)}`,
  );
  return w;
}

/**
 * Wait in an open window: run the probes if wanted (recording `probes` evidence when all pass) and
 * look for evidence others record (chat reconnections, Keep, `hv confirm`) until the activation is
 * confirmed or the deadline passes. Either way the window stays open until the caller has recorded
 * the outcome (and reverted) and calls `closeWindow`, so that a crash in between is finished by
 * recovery (confirm-recovery.ts): a confirmed window is kept, an unconfirmed one reverted.
 */
export async function waitForConfirmation(deps: OperationDeps, w: ConfirmWindow): Promise<WindowOutcome> {
  const { config, paths, runner, now, log, progress } = deps;
  const { confirm, confirmWithinSec, probes } = config.apply;
  const deadline = Date.parse(w.deadline);
  const wantsProbes = confirm.includes('probes');
  let probing: Promise<void> | undefined;
  let nextProbeAt = 0;
  let probesFailed: ProbeOutcome[] = [];
  for (;;) {
    const by = confirmedBy(w, readEvidence(paths, w));
    if (by) {
      log.info('activation confirmed', { id: w.id, by });
      progress.step(`activation ${by}`);
      return { confirmed: true, by, window: w };
    }
    const left = deadline - now().getTime();
    if (left <= 0) break;
    if (wantsProbes && !probing && Date.now() >= nextProbeAt) {
      probing = runProbes(runner, probes)
        .then((outcomes) => {
          const failed = outcomes.filter((o) => !o.ok);
          if (!failed.length)
            recordEvidence(paths, {
              window: w.id,
              kind: 'probes',
              at: now().toISOString(),
              detail: outcomes.map((o) => o.name).join(', '),
            });
          else probesFailed = failed;
        })
        .catch((e) => {
          probesFailed = [{ name: 'probes', ok: false, output: errorMessage(e) }];
        })
        .finally(() => {
          probing = undefined;
          nextProbeAt = Date.now() + PROBE_PAUSE_MS;
        });
    }
    await sleep(Math.min(POLL_MS, left));
  }
  const evidence = readEvidence(paths, w);
  const late = confirmedBy(w, evidence);
  if (late) {
    log.info('activation confirmed', { id: w.id, by: late });
    return { confirmed: true, by: late, window: w };
  }
  const probeText = probesFailed.length
    ? ` (${probesFailed.map((p) => `${p.name}: ${p.output}`).join('; ')})`
    : '';
  const reason = `not confirmed within ${confirmWithinSec} s: ${missingEvidence(w, evidence)}${wantsProbes ? probeText : ''}`;
  log.warn('activation not confirmed', { id: w.id, reason });
  progress.step('not confirmed in time: undoing the activation', reason);
  return { confirmed: false, reason, window: w };
}

/**
 * Fault injection for crash tests, as in op-journal.ts: `HV_TEST_CRASH_AT=<operation>:window`
 * SIGKILLs this process right after the window was persisted.
 */
function crashPoint(name: string): void {
  if (process.env.HV_TEST_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}
