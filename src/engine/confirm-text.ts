import { HV } from '../cli-name.js';
import type { Config } from '../config/schema.js';
import type { ConfirmWindow } from './confirm-window.js';

/** "chat reconnection (slack) or reachability probes or …": what confirms a window, in words. */
export function wantsText(w: Pick<ConfirmWindow, 'wants' | 'chatChannels'>): string {
  return w.wants
    .map((k) =>
      k === 'chat'
        ? `chat reconnection (${w.chatChannels.join(', ') || 'no channel'})`
        : k === 'probes'
          ? 'reachability probes'
          : `"Keep" in chat or "${HV} confirm"`,
    )
    .join(' or ');
}

/**
 * The line a confirmation prompt (system-upgrade, rollback) adds when apply.confirm is set, or
 * undefined when no window will open. `chatChannels`: the channels that must reconnect
 * (src/config/fields.ts reconnectingChannels).
 */
export function confirmPromptLine(config: Config, chatChannels: string[], what: string): string | undefined {
  const { confirm, confirmWithinSec } = config.apply;
  if (!confirm.length) return undefined;
  const wants = wantsText({ wants: confirm, chatChannels });
  return `Confirmation window: ${confirmWithinSec} s after the switch; unless confirmed by ${wants}, ${what} come back by themselves.`;
}
