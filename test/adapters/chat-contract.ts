import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCommands } from '../../commands/index.js';
import type { Actor } from '../../src/audit.js';
import type {
  CommandBus,
  CommandRequest,
  ConfirmationPrompt,
  Evidence,
  Reply,
  ServedCommand,
  SubmitOutcome,
} from '../../src/bus/types.js';
import type { HvEvent } from '../../src/events.js';
import { makeEvent } from '../../src/notify/events.js';
import { DeliveryError } from '../../src/ports/channel.js';
import type { CommandResult } from '../../src/ports/command.js';

/** One `submit` the fake bus received. */
export interface RecordedSubmit {
  req: CommandRequest;
  reply: Reply;
  outcome: SubmitOutcome;
  at: number;
}

/** One `confirm` (button click) the fake bus received. */
export interface RecordedConfirm {
  token: string;
  actor: Actor;
  reply: Reply;
  outcome: SubmitOutcome;
}

/**
 * A `CommandBus` for adapter tests (like bolt-js's FakeReceiver): records what the adapter hands
 * it and lets the test decide the outcome. Like the real bus it alone drives the `Reply`: a
 * refusal through `refused`, a prompt through `confirm` (again, saying who approved, while more
 * approvals are needed), a cancel through `result`; the outcome it returns is for the adapter's
 * acknowledgement and logs, never to be shown again.
 */
export class FakeBus implements CommandBus {
  readonly submits: RecordedSubmit[] = [];
  readonly confirms: RecordedConfirm[] = [];
  readonly cancels: { token: string; actor: Actor }[] = [];
  /** Decides the outcome of a submit; default: accepted. */
  onSubmit: (req: CommandRequest) => SubmitOutcome = (req) => ({ kind: 'accepted', operationId: req.id });
  /** Decides the outcome of a confirmation click; default: accepted. */
  onConfirm: (token: string, actor: Actor) => SubmitOutcome = (token) => ({
    kind: 'accepted',
    operationId: token,
  });
  /** Decides a cancel click: a refusal reason (shown through the reply), or undefined: cancelled. */
  onCancel: (token: string, actor: Actor) => string | undefined = () => undefined;
  /** The prompts this bus showed, by token (an approval shows the prompt again). */
  private readonly prompts = new Map<string, ConfirmationPrompt>();

  /** Decides `verify` (a signed request's quick check); default: accepted. */
  onVerify: (channel: string, evidence: Evidence) => boolean = () => true;
  readonly verifies: { channel: string; evidence: Evidence }[] = [];

  async verify(channel: string, evidence: Evidence): Promise<boolean> {
    this.verifies.push({ channel, evidence });
    return this.onVerify(channel, evidence);
  }

  /** The commands the real registry serves to chat. */
  commands(): readonly ServedCommand[] {
    return listCommands().filter((c) => !c.cliOnly);
  }

  async submit(req: CommandRequest, reply: Reply): Promise<SubmitOutcome> {
    const outcome = this.onSubmit(req);
    this.submits.push({ req, reply, outcome, at: performance.now() });
    if (outcome.kind === 'refused') await reply.refused(outcome.reason);
    if (outcome.kind === 'needs-confirmation') {
      this.prompts.set(outcome.prompt.token, outcome.prompt);
      await reply.confirm(outcome.prompt);
    }
    return outcome;
  }

  async confirm(token: string, actor: Actor, reply: Reply): Promise<SubmitOutcome> {
    const outcome = this.onConfirm(token, actor);
    this.confirms.push({ token, actor, reply, outcome });
    const prompt = this.prompts.get(token);
    if (outcome.kind === 'refused') await reply.refused(outcome.reason);
    if (outcome.kind === 'duplicate') await reply.refused('Already confirmed; it is running.');
    if (outcome.kind === 'awaiting-approval' && prompt)
      await reply.confirm({
        ...prompt,
        approvalsNeeded: outcome.approvalsNeeded,
        text: `${prompt.text}\nApproved by ${actor.display ?? actor.id}; ${outcome.approvalsNeeded} more admin must approve.`,
      });
    return outcome;
  }

  async cancel(token: string, actor: Actor, reply?: Reply): Promise<void> {
    this.cancels.push({ token, actor });
    const reason = this.onCancel(token, actor);
    if (reason) await reply?.refused(reason);
    else
      await reply?.result({
        status: 'ok',
        exitCode: 0,
        message: `Cancelled by ${actor.display ?? actor.id}; nothing was changed.`,
        data: { cancelled: true },
      });
  }

  /** Resolves with the n-th submit (0-based) once it arrived. */
  waitForSubmit(n = 0, timeoutMs = 5_000): Promise<RecordedSubmit> {
    return poll(() => this.submits[n], `submit #${n}`, timeoutMs);
  }

  waitForConfirm(n = 0, timeoutMs = 5_000): Promise<RecordedConfirm> {
    return poll(() => this.confirms[n], `confirm #${n}`, timeoutMs);
  }
}

/** A confirmation prompt as the real bus would make one. */
export function makePrompt(
  command: string,
  argv: string[] = [],
  token = `tok${Date.now()}`,
): ConfirmationPrompt {
  return {
    token,
    command,
    argv,
    expiresAt: new Date(Date.now() + 5 * 60_000).toISOString(),
    text: `Run ${command} on hv01? This applies the tested system permanently.`,
    approvalsNeeded: 1,
  };
}

export function makeResult(status: CommandResult['status'], message: string, data = {}): CommandResult {
  return { status, exitCode: status === 'failed' ? 1 : 0, message, data };
}

/** A platform user the harness can act as. */
export interface ChatUser {
  /** What the adapter must put in `CommandRequest.actor` for this user (at least these fields). */
  actor: Pick<Actor, 'channel' | 'id'> & Partial<Actor>;
}

/** One button the platform shows. */
export interface ChatButton {
  label: string;
  /** Clicks it as `user`; resolves when the platform delivered the click (not when it was acked). */
  click(user: ChatUser): Promise<void>;
}

/** One `/hv …` the harness sent, seen from the platform's side. */
export interface SentCommand {
  /** Resolves with milliseconds from sending to the platform's acknowledgement. */
  acked(): Promise<number>;
  /**
   * Everything a member of the channel sees for this request right now (message text, embed or
   * block text, button labels), latest state of every message.
   */
  publicText(): string;
  /** What only `user` sees (ephemeral messages); '' when the platform shows no such thing. */
  privateText(user: ChatUser): string;
  /** Distinct places (Discord message, Slack thread) holding this request's public messages. */
  places(): string[];
  /** Buttons currently shown with this request. */
  buttons(): ChatButton[];
}

/** What a platform provides to run the shared contract, against a real client and a local peer. */
export interface ChatHarness {
  bus: FakeBus;
  /** The name of the adapter's channel (`ReplyAddress.channel`). */
  channelName: string;
  /** An admin with a platform role/id, and a second, different user. */
  users: { admin: ChatUser; other: ChatUser };
  /** Sends `/hv <command> <argv…>` as `user`, as the platform would deliver it. */
  command(user: ChatUser, command: string, argv?: string[]): Promise<SentCommand>;
  /** The adapter's `deliver`. */
  deliver(event: HvEvent): Promise<void>;
  /** Texts of the messages in the notification channel, oldest first. */
  notifications(): string[];
  /** Makes the next notification post answer 429 with this Retry-After (seconds). */
  rateLimitNext(retryAfterSec: number): void;
  /** Delivers the very same platform request again (a retried envelope); absent if impossible. */
  redeliver?(sent: SentCommand): Promise<void>;
  close(): Promise<void>;
}

export interface ChatContractOptions {
  /** Cases the platform cannot do, each with the reason shown in the report. */
  skip?: Partial<Record<ContractCase, string>>;
}

export type ContractCase =
  | 'ack'
  | 'arguments'
  | 'refused'
  | 'refused-once'
  | 'confirm'
  | 'confirm-other'
  | 'cancel'
  | 'progress'
  | 'redelivery'
  | 'notify'
  | 'notify-long'
  | 'rate-limit';

const ACK_DEADLINE_MS = 3_000;

/**
 * The contract every chat adapter runs (like Hono's `runTest({ newRouter })`): the same
 * user-visible behaviour over each platform's real client and local peer. `makeHarness` starts a
 * peer, the adapter (given `harness.bus`) and its client; `close` stops them all.
 */
export function runChatAdapterContract(
  name: string,
  makeHarness: () => Promise<ChatHarness>,
  opts: ChatContractOptions = {},
): void {
  describe(`chat adapter contract: ${name}`, () => {
    let h: ChatHarness;
    beforeAll(async () => {
      h = await makeHarness();
    });
    afterAll(async () => {
      await h?.close();
    });
    const bus = () => h.bus;
    const reset = () => {
      bus().onSubmit = (req) => ({ kind: 'accepted', operationId: req.id });
      bus().onConfirm = (token) => ({ kind: 'accepted', operationId: token });
      bus().onCancel = () => undefined;
    };
    const caseIt = (id: ContractCase, title: string, fn: () => Promise<void>) => {
      const reason = opts.skip?.[id];
      if (reason) it.skip(`${title} — skipped: ${reason}`, fn);
      else
        it(title, async () => {
          reset();
          await fn();
        });
    };

    caseIt(
      'ack',
      'acknowledges within 3 s and routes the command with the actor and a request id',
      async () => {
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'status');
        expect(await sent.acked()).toBeLessThan(ACK_DEADLINE_MS);
        const sub = await bus().waitForSubmit(before);
        expect(sub.req.command).toBe('status');
        expect(sub.req.argv).toEqual([]);
        expect(sub.req.actor).toMatchObject(h.users.admin.actor);
        expect(sub.req.id).toMatch(/\S/);
        expect(sub.req.replyTo.channel).toBe(h.channelName);
        // A second request is a different request.
        await h.command(h.users.admin, 'status');
        const second = await bus().waitForSubmit(before + 1);
        expect(second.req.id).not.toBe(sub.req.id);
      },
    );

    caseIt('arguments', 'passes arguments as CLI words (rollback --to 42)', async () => {
      const before = bus().submits.length;
      await h.command(h.users.admin, 'rollback', ['--to', '42']);
      const sub = await bus().waitForSubmit(before);
      expect(sub.req.command).toBe('rollback');
      expect(sub.req.argv).toEqual(['--to', '42']);
    });

    caseIt('refused', 'shows a refusal to the requester and nothing runs', async () => {
      bus().onSubmit = () => ({ kind: 'refused', reason: 'not authorised' });
      const before = bus().submits.length;
      const sent = await h.command(h.users.other, 'status');
      expect(await sent.acked()).toBeLessThan(ACK_DEADLINE_MS);
      const sub = await bus().waitForSubmit(before);
      expect(sub.req.actor).toMatchObject(h.users.other.actor);
      await poll(
        () => `${sent.privateText(h.users.other)}\n${sent.publicText()}`.includes('not authorised'),
        'refusal shown',
      );
      expect(sent.buttons()).toEqual([]);
    });

    caseIt(
      'refused-once',
      'a refused request produces exactly one refusal message on the platform',
      async () => {
        // The bus shows the refusal through the Reply and also returns it as the outcome: the
        // adapter acknowledges, it does not show it again.
        bus().onSubmit = () => ({ kind: 'refused', reason: 'rate limited (once)' });
        const before = bus().submits.length;
        const sent = await h.command(h.users.other, 'status');
        await bus().waitForSubmit(before);
        const seen = () => `${sent.privateText(h.users.other)}\n${sent.publicText()}`;
        await poll(() => seen().includes('rate limited (once)'), 'the refusal');
        await settle();
        expect(count(seen(), 'rate limited (once)')).toBe(1);
        expect(sent.buttons()).toEqual([]);
      },
    );

    caseIt(
      'confirm',
      'renders a confirmation with buttons; an admin click reaches bus.confirm with the clicking actor; progress and result follow',
      async () => {
        const prompt = makePrompt('system-upgrade');
        bus().onSubmit = () => ({ kind: 'needs-confirmation', prompt });
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'system-upgrade');
        expect(await sent.acked()).toBeLessThan(ACK_DEADLINE_MS);
        await bus().waitForSubmit(before);
        const confirm = await poll(
          () => sent.buttons().find((b) => /confirm/i.test(b.label)),
          'a Confirm button',
        );
        expect(sent.publicText()).toContain('system-upgrade');
        const clicksBefore = bus().confirms.length;
        await confirm.click(h.users.admin);
        const click = await bus().waitForConfirm(clicksBefore);
        expect(click.token).toBe(prompt.token);
        expect(click.actor).toMatchObject(h.users.admin.actor);
        await click.reply.progress('activating', 'switch-to-configuration switch');
        await click.reply.result(makeResult('applied', 'Applied generation 2 (hv01)'));
        await poll(() => sent.publicText().includes('Applied generation 2'), 'the result');
        expect(sent.places()).toHaveLength(1);
        expect(sent.buttons().filter((b) => /confirm/i.test(b.label))).toEqual([]);
      },
    );

    caseIt(
      'confirm-other',
      "another user's click reaches the bus as that user and its refusal is shown",
      async () => {
        const prompt = makePrompt('rollback', ['--to', '3']);
        bus().onSubmit = () => ({ kind: 'needs-confirmation', prompt });
        bus().onConfirm = (_token, actor) =>
          actor.id === h.users.admin.actor.id
            ? { kind: 'accepted', operationId: 'op' }
            : { kind: 'refused', reason: 'only an authorised admin can confirm' };
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'rollback', ['--to', '3']);
        await bus().waitForSubmit(before);
        const confirm = await poll(
          () => sent.buttons().find((b) => /confirm/i.test(b.label)),
          'a Confirm button',
        );
        const clicksBefore = bus().confirms.length;
        await confirm.click(h.users.other);
        const click = await bus().waitForConfirm(clicksBefore);
        expect(click.actor).toMatchObject(h.users.other.actor);
        await poll(
          () =>
            `${sent.privateText(h.users.other)}\n${sent.publicText()}`.includes(
              'only an authorised admin can confirm',
            ),
          'refusal of the click',
        );
        // The prompt stays for the admin.
        expect(sent.buttons().some((b) => /confirm/i.test(b.label))).toBe(true);
      },
    );

    caseIt(
      'cancel',
      "a cancel by someone else is refused and the prompt stays; the requester's cancel closes it",
      async () => {
        const prompt = makePrompt('system-upgrade');
        bus().onSubmit = () => ({ kind: 'needs-confirmation', prompt });
        bus().onCancel = (_token, actor) =>
          actor.id === h.users.admin.actor.id
            ? undefined
            : 'not authorised: only the requester or an admin can cancel';
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'system-upgrade');
        await bus().waitForSubmit(before);
        const cancel = await poll(
          () => sent.buttons().find((b) => /cancel/i.test(b.label)),
          'a Cancel button',
        );
        const cancelsBefore = bus().cancels.length;
        await cancel.click(h.users.other);
        await poll(() => bus().cancels[cancelsBefore], 'cancel by the other user');
        expect(bus().cancels[cancelsBefore]?.token).toBe(prompt.token);
        expect(bus().cancels[cancelsBefore]?.actor).toMatchObject(h.users.other.actor);
        await poll(
          () =>
            `${sent.privateText(h.users.other)}\n${sent.publicText()}`.includes(
              'only the requester or an admin',
            ),
          'refusal of the cancel',
        );
        await settle();
        expect(sent.buttons().some((b) => /confirm/i.test(b.label))).toBe(true);
        expect(sent.publicText()).not.toMatch(/cancelled by/i);
        const again = await poll(
          () => sent.buttons().find((b) => /cancel/i.test(b.label)),
          'the Cancel button',
        );
        await again.click(h.users.admin);
        await poll(() => !sent.buttons().some((b) => /confirm/i.test(b.label)), 'the prompt closed');
        expect(sent.publicText()).toMatch(/cancel/i);
      },
    );

    caseIt(
      'progress',
      'progress then the result reach the same reply, edits rather than floods',
      async () => {
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'upgrade-test');
        const sub = await bus().waitForSubmit(before);
        await sub.reply.progress('building', 'nix build …toplevel');
        await poll(() => sent.publicText().includes('building'), 'progress');
        for (let i = 0; i < 8; i++) await sub.reply.progress('health checks', `check ${i}`);
        await sub.reply.result(
          makeResult('passed', 'Upgrade Test: PASSED\nnixpkgs 0123456789ab → fedcba987654', {
            toplevel: '/nix/store/abc-nixos-system',
          }),
        );
        await poll(() => sent.publicText().includes('PASSED'), 'the result');
        expect(sent.publicText()).toContain('fedcba987654');
        expect(sent.places()).toHaveLength(1);
      },
    );

    caseIt(
      'redelivery',
      'the same platform request delivered twice carries the same request id',
      async () => {
        const before = bus().submits.length;
        const sent = await h.command(h.users.admin, 'status');
        await bus().waitForSubmit(before);
        await h.redeliver?.(sent);
        await settle();
        const ids = bus()
          .submits.slice(before)
          .map((s) => s.req.id);
        expect(new Set(ids).size).toBe(1);
      },
    );

    caseIt('notify', 'delivers a notification to the channel', async () => {
      const before = h.notifications().length;
      await h.deliver(event('NixOS update available: nixos-24.05 2024-09-03'));
      const after = h.notifications().slice(before);
      expect(after.length).toBeGreaterThanOrEqual(1);
      expect(after.join('\n')).toContain('NixOS update available: nixos-24.05 2024-09-03');
      expect(after.join('\n')).toContain('hv upgrade-test');
    });

    caseIt('notify-long', 'a 4,500-character notification arrives complete within the limits', async () => {
      const before = h.notifications().length;
      const body = longText(4_500);
      await h.deliver(event('Upgrade test failed', { error: body }));
      const text = h.notifications().slice(before).join('\n');
      // Every line of the body arrives, in order (the peer rejects anything over the limits).
      let at = 0;
      for (const line of body.split('\n')) {
        const found = text.indexOf(line, at);
        expect(found, `line "${line.slice(0, 20)}…" missing or out of order`).toBeGreaterThanOrEqual(0);
        at = found + line.length;
      }
    });

    caseIt('rate-limit', 'a 429 becomes DeliveryError with retryAfterMs, nothing is sent twice', async () => {
      const before = h.notifications().length;
      h.rateLimitNext(2);
      const started = Date.now();
      const failure = await h.deliver(event('rate limited notice')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(DeliveryError);
      expect((failure as DeliveryError).retryAfterMs).toBeGreaterThanOrEqual(2_000);
      expect((failure as DeliveryError).retryAfterMs).toBeLessThan(3_000);
      // The adapter must not wait the limit out itself: the outbox owns the backoff.
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(h.notifications().length).toBe(before);
      await new Promise((r) => setTimeout(r, 2_100));
      await h.deliver(event('rate limited notice'));
      const after = h.notifications().slice(before);
      expect(after.filter((t) => t.includes('rate limited notice'))).toHaveLength(1);
    });
  });
}

function event(title: string, data: Record<string, unknown> = {}): HvEvent {
  return makeEvent('update.available', {
    host: 'hv01',
    key: `k-${title}-${Math.random()}`,
    title,
    data,
    next: 'hv upgrade-test',
  });
}

/** Numbered lines, so a lost or reordered piece is visible. */
export function longText(chars: number): string {
  const lines: string[] = [];
  let n = 0;
  let size = 0;
  while (size < chars) {
    const line = `line ${String(n).padStart(4, '0')}: build output ${'x'.repeat(40)}`;
    lines.push(line);
    size += line.length + 1;
    n++;
  }
  return lines.join('\n').slice(0, chars);
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

/** Gives in-flight requests a moment, for "nothing more happened" assertions. */
function settle(ms = 300): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `probe` is truthy; the error names what was awaited. */
export async function poll<T>(
  probe: () => T | undefined | null | false,
  what: string,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
