import type { Actor } from '../audit.js';
import { wantsText } from '../engine/confirm-text.js';
import { type ConfirmWindow, readWindow, recordEvidence } from '../engine/confirm-window.js';
import { errorMessage } from '../errors.js';
import type { Services } from '../services.js';
import { actorKey, atLeast, roleOf } from './authorise.js';
import type { ConfirmTokens } from './confirm-token.js';
import type { KeepOffer, OperationRecord, OperationStore } from './operations.js';
import type { Reply, SubmitOutcome, WindowNotice } from './types.js';

/** What a token is bound to: a Keep button of one window cannot keep another. */
const tokenFields = (k: KeepOffer) => ({
  requestId: k.requestId,
  command: `keep:${k.windowId}`,
  requester: actorKey(k.requester),
  expiresAt: k.deadline,
});

const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/** The window as its thread shows it: until when, what confirms it, what happens otherwise. */
export function windowText(w: ConfirmWindow, now: Date): string {
  const left = Math.max(0, Math.round((Date.parse(w.deadline) - now.getTime()) / 1000));
  return [
    `Confirmation window open until ${w.deadline} (${left} s left): ${base(w.activated)} stays only if confirmed by ${wantsText(w)}.`,
    `Otherwise ${base(w.previousSystem)} comes back by itself.`,
  ].join(' ');
}

/** How a followed operation's thread shows and takes Keep, and how a click is decided. */
export interface Keeper {
  /**
   * Called while following `rec`: offer the open window of its request in its thread (once per
   * window), or take the button away once the window closed. Returns the window offered now.
   */
  poll(rec: OperationRecord, reply: Reply, offered: string | undefined): Promise<string | undefined>;
  /** A Keep click: the requester or any admin; audited; `human` evidence for the window. */
  press(token: string, actor: Actor, reply: Reply): Promise<SubmitOutcome>;
}

export function createKeeper(
  services: Services,
  store: OperationStore,
  tokens: ConfirmTokens,
  safely: (what: string, id: string, f: () => Promise<void>) => Promise<boolean>,
): Keeper {
  const { audit, now, config } = services;
  const window = (): ConfirmWindow | null => {
    try {
      return readWindow(services.paths);
    } catch (e) {
      services.log('warn', 'confirmation window unreadable', { error: errorMessage(e) });
      return null;
    }
  };
  const show = async (rec: OperationRecord, reply: Reply, notice: WindowNotice) => {
    const f = reply.window;
    if (f) await safely('window', rec.id, () => f.call(reply, notice));
  };

  const refuse = async (actor: Actor, k: KeepOffer | null, reply: Reply, reason: string, why: string) => {
    await audit.append({
      actor,
      operation: k?.command ?? 'keep',
      result: 'denied',
      ...(k ? { requestId: k.requestId } : {}),
      details: { reason: why, ...(k ? { window: k.windowId } : {}) },
    });
    await safely('refused', k?.operationId ?? 'keep', () => reply.refused(reason));
    return { kind: 'refused', reason } as const;
  };

  return {
    async poll(rec, reply, offered) {
      const w = window();
      if (offered && w?.id !== offered) {
        await show(rec, reply, {
          state: 'closed',
          windowId: offered,
          deadline: '',
          text: 'The confirmation window is closed; the result follows.',
        });
        return undefined;
      }
      if (!w || offered === w.id || w.requestId !== rec.requestId) return offered;
      const notice: WindowNotice = {
        state: 'open',
        windowId: w.id,
        deadline: w.deadline,
        text: windowText(w, now()),
      };
      if (w.wants.includes('human')) {
        const offer: KeepOffer = {
          token: '',
          windowId: w.id,
          operationId: rec.id,
          requestId: rec.requestId,
          command: rec.command,
          requester: rec.actor,
          deadline: w.deadline,
        };
        offer.token = tokens.issue(tokenFields(offer));
        store.saveKeep(offer);
        notice.token = offer.token;
      }
      services.log('info', 'confirmation window shown in the thread', { operation: rec.id, window: w.id });
      await show(rec, reply, notice);
      return w.id;
    },

    async press(token, actor, reply) {
      if (!tokens.wellFormed(token))
        return refuse(
          actor,
          null,
          reply,
          'This Keep button is not one hv made on this host.',
          'foreign keep token',
        );
      const k = store.loadKeep(token);
      if (!k) return refuse(actor, null, reply, 'This Keep button is unknown.', 'unknown keep token');
      if (!tokens.verify(token, tokenFields(k)))
        return refuse(
          actor,
          k,
          reply,
          'This Keep button is not one hv made on this host.',
          'keep token does not verify',
        );
      const isRequester = actorKey(actor) === actorKey(k.requester);
      if (!isRequester && !atLeast(roleOf(actor, config.chatops.roles), 'admin'))
        return refuse(
          actor,
          k,
          reply,
          'not authorised: only the requester or an admin can keep this system.',
          'keep by non-admin',
        );
      const w = window();
      const closed =
        'The confirmation window is already closed (confirmed, or the activation was undone); the result is in this thread.';
      if (!w || w.id !== k.windowId) return refuse(actor, k, reply, closed, 'window closed');
      if (now().getTime() > Date.parse(w.deadline))
        return refuse(
          actor,
          k,
          reply,
          `Too late: the confirmation window ended at ${w.deadline}; hv is undoing the activation.`,
          'window expired',
        );
      const by = actor.display ?? actor.id;
      const recorded = recordEvidence(services.paths, {
        window: w.id,
        kind: 'human',
        at: now().toISOString(),
        by,
        detail: `Keep pressed in ${actor.channel}`,
      });
      if (!recorded) return refuse(actor, k, reply, closed, 'window closed');
      await audit.append({
        actor,
        operation: k.command,
        result: 'kept',
        requestId: k.requestId,
        details: { window: w.id, requester: actorKey(k.requester), activated: w.activated },
      });
      services.log('info', 'Keep pressed', { window: w.id, actor: actorKey(actor) });
      const f = reply.window;
      if (f)
        await safely('window', k.operationId, () =>
          f.call(reply, {
            state: 'kept',
            windowId: w.id,
            deadline: w.deadline,
            by,
            text: `Kept by ${by}: the activation stays once hv sees it.`,
          }),
        );
      return { kind: 'accepted', operationId: k.operationId };
    },
  };
}
