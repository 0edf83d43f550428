import type { Actor } from '../audit.js';
import { parseCommandArgs, validateArgs } from '../command-args.js';
import { Exit, errorMessage } from '../errors.js';
import { truncate } from '../notify/templates.js';
import type { ProvenRequest } from '../ports/channel.js';
import type { AnyCommand, CommandRegistry } from '../ports/command.js';
import type { Services } from '../services.js';
import { actorKey, atLeast, roleOf } from './authorise.js';
import { ConfirmTokens } from './confirm-token.js';
import { createKeeper, type Keeper } from './keep.js';
import { OperationStore, type PendingConfirmation } from './operations.js';
import { RateLimiter } from './rate-limit.js';
import { createOperationRunner, type RunnerOptions } from './runner.js';
import type {
  CommandBus,
  CommandRequest,
  ConfirmationPrompt,
  Evidence,
  Reply,
  ReplyFactory,
  SubmitOutcome,
} from './types.js';

export { defaultChildEntry, systemdScopePrefix } from './runner.js';

export const NOT_AUTHORISED = 'not authorised';

/** Refusals written (audit line, claim file) for unknown identities: per identity, and in all. */
const UNKNOWN_PER_ACTOR_PER_MINUTE = 1;
const UNKNOWN_PER_MINUTE = 30;
/** Audited refusals of signed requests whose evidence failed (forged, unsigned), a minute in all. */
const REFUSED_EVIDENCE_PER_MINUTE = 30;
/** Unwritten "not authorised." answers to unknown identities a minute, past the audited ones. */
const UNKNOWN_ANSWERS_PER_MINUTE = 120;

/** A prompt's preview at most this long: with the rest it stays under Slack's 3000-character section. */
const PREVIEW_LIMIT = 1500;

/**
 * The commands come from the composition root (commands/index.ts `commandRegistry`); the bus offers
 * those that are not CLI-only.
 */
export interface CommandBusOptions extends RunnerOptions, CommandRegistry {}

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

/** A request's own fields, as checked against what its platform signed. */
interface Claimed {
  actor: Actor;
  id?: string;
  command?: string;
  argv?: string[];
  token?: string;
  action?: 'confirm' | 'cancel' | 'keep';
}

/** Create the bus the daemon hosts; chat and email adapters submit to it. */
export function createCommandBus(services: Services, opts: CommandBusOptions): HostedCommandBus {
  const { config, audit, now } = services;
  const chat = config.chatops;
  const store = new OperationStore(services.paths.dir);
  const limiter = new RateLimiter(chat.ratePerMinute, now);
  const unknownLimiter = new RateLimiter(UNKNOWN_PER_ACTOR_PER_MINUTE, now);
  const unknownTotal = new RateLimiter(UNKNOWN_PER_MINUTE, now);
  const unknownAnswers = new RateLimiter(UNKNOWN_ANSWERS_PER_MINUTE, now);
  const refusedEvidence = new RateLimiter(REFUSED_EVIDENCE_PER_MINUTE, now);
  const tokens = new ConfirmTokens(services.paths.dir, now, (msg, fields) =>
    services.log('warn', msg, fields),
  );
  const channelNamed = (name: string) => config.notify.channels.find((c) => c.name === name);

  /**
   * What the request's platform proved, for a channel whose platform signs requests (undefined:
   * nothing to prove); a string is the reason it is refused. Only the engine holds the keys.
   * (Which channel may carry which identity is checked where requests cross from the chat
   * process: src/chatd/engine-server.ts.)
   */
  const prove = async (
    channelName: string,
    evidence: Evidence | undefined,
  ): Promise<ProvenRequest | string | undefined> => {
    const settings = channelNamed(channelName);
    const type = settings && services.channels.get(settings.type);
    if (!settings || !type?.requiresEvidence(settings)) return undefined;
    if (!evidence) return 'no signature';
    const verifier = await type.verifier?.();
    if (!verifier) return `no verifier for ${settings.type}`;
    try {
      return await verifier(settings, evidence, { readSecret: services.readSecret, now });
    } catch (e) {
      return errorMessage(e);
    }
  };

  /** The request's own fields disagree with what was proved: the reason, else undefined. */
  const mismatch = (proven: ProvenRequest, claimed: Claimed): string | undefined => {
    if (actorKey(proven.actor) !== actorKey(claimed.actor)) return 'actor differs from the signed request';
    // Groups grant roles too (identitiesOf): a signed identity carries exactly the groups proved.
    if (JSON.stringify(claimed.actor.groups ?? []) !== JSON.stringify(proven.actor.groups ?? []))
      return 'groups differ from the signed request';
    if (proven.requestId !== undefined && claimed.id !== undefined && proven.requestId !== claimed.id)
      return 'request id differs from the signed request';
    if (proven.command !== undefined && claimed.command !== undefined && proven.command !== claimed.command)
      return 'command differs from the signed request';
    if (
      proven.argv !== undefined &&
      claimed.argv !== undefined &&
      JSON.stringify(proven.argv) !== JSON.stringify(claimed.argv)
    )
      return 'arguments differ from the signed request';
    if (claimed.token !== undefined && proven.token !== claimed.token)
      return 'confirmation token differs from the signed request';
    if (proven.action !== undefined && claimed.action !== undefined && proven.action !== claimed.action)
      return 'button differs from the signed request';
    return undefined;
  };

  /**
   * A signed platform's proof must match the request. A failure answers nothing; it is logged, and
   * audited (with the claimed identity and the reason) up to REFUSED_EVIDENCE_PER_MINUTE a minute
   * in all, so that a forged or unsigned flood cannot fill the disk but a single forged mail is on
   * record.
   */
  const admit = async (
    replyChannel: string,
    evidence: Evidence | undefined,
    claimed: Claimed,
  ): Promise<string | undefined> => {
    const proven = await prove(replyChannel, evidence);
    if (typeof proven === 'string') return `signature refused: ${proven}`;
    return proven ? mismatch(proven, claimed) : undefined;
  };

  const dropped = (what: string, id: string, reason: string): SubmitOutcome => {
    services.log('warn', 'request dropped', { what, request: id.slice(0, 100), reason });
    return { kind: 'refused', reason };
  };
  /** A request whose evidence failed: dropped, and audited within the cap above. */
  const unproven = async (
    what: string,
    claimed: { actor: Actor; id: string; command: string; argv: string[] },
    reason: string,
  ): Promise<SubmitOutcome> => {
    dropped(what, claimed.id, reason);
    if (refusedEvidence.take('*') === 0)
      await audit.append({
        actor: { channel: claimed.actor.channel, id: claimed.actor.id.slice(0, 200) },
        operation: claimed.command.slice(0, 64) || what,
        args: { argv: claimed.argv.slice(0, 20).map((a) => a.slice(0, 200)) },
        result: 'denied',
        requestId: claimed.id.slice(0, 200),
        details: { reason: reason.slice(0, 500), identity: 'unverified' },
      });
    return { kind: 'refused', reason };
  };

  const find = opts.findCommand;
  // The runner shows confirmation windows through the keeper, which needs the runner's `safely`.
  let keeper: Keeper | undefined;
  const runner = createOperationRunner(services, store, opts, {
    poll: (rec, reply, offered) => keeper?.poll(rec, reply, offered) ?? Promise.resolve(offered),
  });
  const { safely } = runner;
  keeper = createKeeper(services, store, tokens, safely);
  const keep = keeper;
  const start = runner.start;

  let lane: Promise<void> = Promise.resolve();
  const takeTurn = (): Promise<void> => {
    const turn = lane.then(() => new Promise<void>((r) => setImmediate(r)));
    lane = turn;
    return turn;
  };

  const refuse = async (
    req: { actor: Actor; command: string; argv: string[]; id: string },
    reply: Reply,
    reason: string,
    auditReason: string,
  ): Promise<SubmitOutcome> => {
    await audit.append({
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

  /** The command's preview for a prompt, cut to fit a chat message; a failure is said, not thrown. */
  const previewOf = async (cmd: AnyCommand, args: Record<string, unknown>): Promise<string | undefined> => {
    if (!cmd.preview) return undefined;
    try {
      const text = await cmd.preview({ config, services }, args);
      return text === undefined ? undefined : truncate(text, PREVIEW_LIMIT);
    } catch (e) {
      services.log('warn', 'preview failed', { command: cmd.name, error: errorMessage(e) });
      return `(hv could not tell what will change: ${errorMessage(e)})`;
    }
  };

  /** The confirmation prompt of a pending request: what runs, what changes, who approved so far. */
  const promptOf = (cmd: AnyCommand, c: PendingConfirmation): ConfirmationPrompt => {
    const left = c.needed - c.approvers.length;
    const approvedBy = c.approverActors.map((a) => a.display ?? a.id);
    return {
      token: c.token,
      command: cmd.name,
      argv: c.argv,
      expiresAt: c.expiresAt,
      approvalsNeeded: left,
      text: [
        `Run \`hv ${[cmd.name, ...c.argv].join(' ')}\` on ${config.host}? ${cmd.summary}.`,
        ...(c.preview ? [c.preview] : []),
        approvedBy.length
          ? `Approved by ${approvedBy.join(', ')}; ${left} more admin${left === 1 ? '' : 's'} must approve.`
          : c.needed > 1
            ? `Needs ${c.needed} different admins to approve.`
            : 'An admin must confirm.',
        `Expires in ${Math.max(1, Math.round((Date.parse(c.expiresAt) - now().getTime()) / 60_000))} min.`,
      ].join('\n'),
    };
  };

  const bus: HostedCommandBus = {
    store,

    commands: () => opts.listCommands().filter((c) => !c.cliOnly),

    async submit(req: CommandRequest, reply: Reply): Promise<SubmitOutcome> {
      // What follows writes and fsyncs (claim, audit) synchronously: take turns, one request per
      // event-loop iteration, so that acknowledgements of other requests are never held up for long.
      const inadmissible = await admit(req.replyTo.channel, req.evidence, req);
      if (inadmissible) return unproven('submit', req, inadmissible);
      // Unknown identities are limited before anything is written: one audited refusal a minute
      // each, 30 in all. Past that they are told "not authorised." without a write, and past a
      // further cap they get no answer at all (a flood must cost neither disk nor API calls).
      if (
        !roleOf(req.actor, chat.roles) &&
        (unknownLimiter.take(actorKey(req.actor)) > 0 || unknownTotal.take('audited') > 0)
      ) {
        if (unknownAnswers.take('*') > 0) return dropped('submit', req.id, 'unknown identity, rate limited');
        await safely('refused', req.id, () => reply.refused(`${NOT_AUTHORISED}.`));
        return { kind: 'refused', reason: `${NOT_AUTHORISED}.` };
      }
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
      const argRole = cmd.roleFor?.(args);
      if (argRole && !atLeast(role, argRole.role)) {
        settleRefused('role too low for the arguments');
        return refuse(
          req,
          reply,
          `${NOT_AUTHORISED}: "${cmd.name} ${argRole.what}" needs the ${argRole.role} role (you have ${role}); "${cmd.name}" without ${argRole.what} needs ${cmd.role}.`,
          `${argRole.what} needs ${argRole.role}, has ${role}`,
        );
      }
      await audit.append({
        actor: req.actor,
        operation: cmd.name,
        args,
        result: 'allowed',
        requestId: req.id,
        details: {
          role,
          ...(argRole ? { argRole: argRole.role, for: argRole.what } : {}),
          ...(cmd.confirm ? { confirmation: 'required' } : {}),
        },
      });
      if (cmd.confirm) {
        const preview = await previewOf(cmd, args);
        const needed = (chat.approvals as Record<string, number | undefined>)[cmd.name] ?? 1;
        const expiresAt = new Date(now().getTime() + chat.confirmTimeoutSec * 1000).toISOString();
        const token = tokens.issue({
          requestId: req.id,
          command: cmd.name,
          requester: actorKey(req.actor),
          expiresAt,
        });
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
          preview,
        };
        store.saveConfirmation(pending);
        store.settle(keys, { outcome: 'needs-confirmation' }, now());
        const prompt = promptOf(cmd, pending);
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

    async confirm(token: string, actor: Actor, reply: Reply, evidence?: Evidence): Promise<SubmitOutcome> {
      const channel = reply.address?.().channel;
      if (channel !== undefined) {
        const inadmissible = await admit(channel, evidence, { actor, token, action: 'confirm' });
        if (inadmissible)
          return unproven(
            'confirm',
            { actor, id: token.slice(0, 8), command: 'confirm', argv: [] },
            inadmissible,
          );
      }
      // A token hv did not make (another host's, made up, altered) is refused before any lookup.
      const foreign = 'This confirmation token is not one hv issued on this host.';
      if (!tokens.wellFormed(token))
        return refuse(
          { actor, command: 'confirm', argv: [], id: 'confirm' },
          reply,
          foreign,
          'foreign confirmation token',
        );
      let c: PendingConfirmation | null;
      try {
        c = store.loadConfirmation(token);
      } catch (e) {
        // A damaged confirmation approves nothing; the requester and the admin are told which file.
        return refuse(
          { actor, command: 'confirm', argv: [], id: 'confirm' },
          reply,
          errorMessage(e),
          'unreadable confirmation',
        );
      }
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
      const bound = {
        requestId: c.requestId,
        command: c.command,
        requester: actorKey(c.requester),
        expiresAt: c.expiresAt,
      };
      if (!tokens.verify(token, bound))
        return refuse(base, reply, foreign, 'confirmation token does not verify');
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
        await audit.append({
          actor,
          operation: c.command,
          args: c.args,
          result: 'approved',
          requestId: c.requestId,
          details: { approvals: c.approvers.length, needed: c.needed },
        });
        const left = c.needed - c.approvers.length;
        // The same prompt again, saying who approved: the buttons stay for the next admin.
        if (cmd) await safely('confirm', c.requestId, () => reply.confirm(promptOf(cmd, c)));
        return { kind: 'awaiting-approval', approvalsNeeded: left };
      }
      if (!cmd) return refuse(base, reply, `Unknown command "${c.command}".`, 'unknown command');
      // The admins approved what the prompt said would change: if that changed meanwhile (another
      // test passed, the profile moved), they did not approve what would run now.
      if (c.preview !== undefined) {
        const current = await previewOf(cmd, c.args);
        if (current !== c.preview) {
          store.takeConfirmation(token);
          return refuse(
            base,
            reply,
            `What "${c.command}" would change is no longer what the prompt said. Now:\n${current ?? '(unknown)'}\nRun /hv ${[c.command, ...c.argv].join(' ')} again to confirm that.`,
            'changed since the prompt',
          );
        }
      }
      if (!store.takeConfirmation(token)) {
        // Another click took it a moment ago; that click's reply shows the operation.
        await safely('refused', c.requestId, () => reply.refused('Already confirmed; it is running.'));
        return { kind: 'duplicate' };
      }
      await audit.append({
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

    async cancel(token: string, actor: Actor, reply?: Reply, evidence?: Evidence): Promise<void> {
      const channel = reply?.address?.().channel;
      if (channel !== undefined) {
        const inadmissible = await admit(channel, evidence, { actor, token, action: 'cancel' });
        if (inadmissible) {
          await unproven(
            'cancel',
            { actor, id: token.slice(0, 8), command: 'cancel', argv: [] },
            inadmissible,
          );
          return;
        }
      }
      let c: PendingConfirmation | null = null;
      let unreadable: string | undefined;
      try {
        c = store.loadConfirmation(token);
      } catch (e) {
        unreadable = errorMessage(e);
      }
      const tell = async (reason: string) => {
        if (reply) await safely('refused', c?.requestId ?? 'cancel', () => reply.refused(reason));
      };
      if (unreadable) return tell(unreadable);
      if (!c) return tell('This confirmation is unknown or was already used.');
      const isRequester = actorKey(actor) === actorKey(c.requester);
      if (!isRequester && !atLeast(roleOf(actor, chat.roles), 'admin')) {
        await audit.append({
          actor,
          operation: c.command,
          result: 'denied',
          requestId: c.requestId,
          details: { reason: 'cancel by non-admin' },
        });
        return tell(`${NOT_AUTHORISED}: only the requester or an admin can cancel this.`);
      }
      if (!store.takeConfirmation(token)) return tell('This confirmation is unknown or was already used.');
      await audit.append({
        actor,
        operation: c.command,
        args: c.args,
        result: 'cancelled',
        requestId: c.requestId,
      });
      if (reply)
        await safely('result', c.requestId, () =>
          reply.result({
            status: 'ok',
            exitCode: Exit.ok,
            message: `Cancelled by ${actor.display ?? actor.id}; nothing was changed.`,
            data: { cancelled: true, command: c.command },
          }),
        );
    },

    async keep(token: string, actor: Actor, reply: Reply, evidence?: Evidence): Promise<SubmitOutcome> {
      const channel = reply.address?.().channel;
      if (channel !== undefined) {
        const inadmissible = await admit(channel, evidence, { actor, token, action: 'keep' });
        if (inadmissible)
          return unproven('keep', { actor, id: token.slice(0, 8), command: 'keep', argv: [] }, inadmissible);
      }
      return keep.press(token, actor, reply);
    },

    async verify(channel: string, evidence: Evidence): Promise<boolean> {
      const settings = channelNamed(channel);
      if (!settings || !services.channels.get(settings.type)?.requiresEvidence(settings)) return false;
      const proven = await prove(channel, evidence);
      return proven !== undefined && typeof proven !== 'string';
    },

    resumePending(replyFor: ReplyFactory): number {
      return runner.resume(replyFor);
    },

    idle: () => runner.idle(),
    stop: () => runner.stop(),
  };
  return bus;
}
