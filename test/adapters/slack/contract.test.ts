import { SlackPeer } from '../../peers/slack-peer.js';
import { type ChatHarness, type ChatUser, FakeBus, runChatAdapterContract } from '../chat-contract.js';
import {
  bareConfig,
  buttonsOf,
  click,
  makeAdapter,
  messageText,
  NOTIFY_CHANNEL,
  redeliver,
  type SentSlash,
  sendSlash,
  threadsSince,
} from './harness.js';

runChatAdapterContract('slack (Socket Mode, real @slack/bolt against the loopback peer)', async () => {
  const peer = await SlackPeer.start();
  const { config, cleanup } = bareConfig(peer);
  const { adapter } = makeAdapter(config);
  const bus = new FakeBus();
  await adapter.start({ bus });
  const team = peer.workspace.teamId;
  const user = (id: string): ChatUser => ({ actor: { channel: 'slack', id: `${team}:${id}` } });
  const admin = user(peer.workspace.userId);
  const other = user('U0OTHER');
  const idOf = (u: ChatUser) => u.actor.id.split(':')[1] as string;
  const channel = peer.workspace.channelId;
  const sent = new WeakMap<object, SentSlash>();

  const harness: ChatHarness = {
    bus,
    channelName: 'slack',
    users: { admin, other },
    async command(u, command, argv = []) {
      const s = sendSlash(peer, { id: idOf(u) }, [command, ...argv].join(' '));
      const threads = () => threadsSince(peer, channel, s.sentAt);
      const handle = {
        async acked() {
          const a = await s.ack;
          if (!a.acked) throw new Error('not acknowledged');
          return a.latencyMs;
        },
        publicText: () => threads().flat().map(messageText).join('\n'),
        privateText: (who: ChatUser) =>
          peer.messages
            .filter((m) => m.ephemeralTo === idOf(who) && m.postedAt >= s.sentAt)
            .map(messageText)
            .join('\n'),
        places: () => threads().map((t) => t[0]?.ts ?? ''),
        buttons: () =>
          threads()
            .flat()
            .flatMap(buttonsOf)
            .map((b) => ({
              label: b.label,
              click: async (who: ChatUser) => {
                await click(peer, b, idOf(who));
              },
            })),
      };
      sent.set(handle, s);
      await s.ack;
      return handle;
    },
    deliver: (event) => adapter.deliver(event, { id: event.id, attempt: 1 }),
    notifications: () => peer.messages.filter((m) => m.channel === NOTIFY_CHANNEL).map(messageText),
    rateLimitNext: (sec) => peer.failNext('chat.postMessage', { status: 429, retryAfter: sec }),
    async redeliver(handle) {
      const s = sent.get(handle);
      if (s) await redeliver(peer, s);
    },
    async close() {
      await adapter.stop();
      await peer.stop();
      cleanup();
    },
  };
  return harness;
});
