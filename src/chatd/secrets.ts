/**
 * Which secrets the chat process gets: every `…File` key of a channel it hosts, except the ones its
 * type keeps for the engine (Slack's signing secret). Each has a credential id, `<channel>.<key
 * path>` (e.g. `slack.botTokenFile`, `ops-mail.intake.imap.passwordFile`), which is also its name
 * under systemd's LoadCredential (the NixOS module computes the same ids).
 */
import type { ChannelSettings, ChannelTypes } from '../ports/channel.js';

export interface ChatSecret {
  /** `<channel>.<dotted key path>` */
  id: string;
  /** The file the config names. */
  path: string;
}

function walk(value: unknown, prefix: string[], out: { key: string[]; path: string }[]): void {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (k.endsWith('File') && typeof v === 'string') out.push({ key: [...prefix, k], path: v });
    else walk(v, [...prefix, k], out);
  }
}

/** The secrets of one channel the chat process hosts. */
export function chatSecrets(channel: ChannelSettings, types: ChannelTypes): ChatSecret[] {
  const kept = new Set(types.get(channel.type)?.engineSecrets ?? []);
  const found: { key: string[]; path: string }[] = [];
  walk(channel, [], found);
  const name = channel.name ?? channel.type;
  return found
    .filter((f) => !kept.has(f.key.join('.')))
    .map((f) => ({ id: `${name}.${f.key.join('.')}`, path: f.path }));
}

/** The channels whose intake or notifier runs in the chat process, with where each part runs. */
export function chatChannels(
  channels: readonly ChannelSettings[],
  types: ChannelTypes,
): { settings: ChannelSettings; intake: boolean; notifier: boolean }[] {
  return channels.flatMap((settings) => {
    const type = types.get(settings.type);
    if (!type) return [];
    const p = type.placement(settings);
    return p.intake || p.notifier === 'chat'
      ? [{ settings, intake: p.intake, notifier: p.notifier === 'chat' }]
      : [];
  });
}
