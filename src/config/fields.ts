import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { EVENT_TYPES, type EventType } from '../events.js';

/** An absolute filesystem path. */
export const AbsPath = z
  .string()
  .min(1)
  .refine((p) => isAbsolute(p), { message: 'must be an absolute path (starting with "/")' });

/** A command as an argv array (never a shell string). */
export const Argv = z
  .array(z.string().min(1))
  .min(1, 'must be a non-empty argv array, e.g. ["wall", "-g", "wheel"]');

export const EventFilter = z.array(z.enum(EVENT_TYPES)).min(1).optional();

/** Fields every notification channel has. */
export const channelBase = {
  /** Unique name of the channel; defaults to its type. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, 'must contain only letters, digits, ".", "_" and "-"')
    .optional(),
  /** Which events this channel receives; all when absent. */
  events: EventFilter,
  /** Seconds one delivery attempt may take before it counts as failed. */
  timeoutSec: z.number().positive().max(600).optional(),
};

/** What the core reads of any channel's config entry (`channelBase` plus `type`, and `digest` where a type has it). */
export interface ChannelSettings {
  type: string;
  /** Unique name; the config fills in the type when absent. */
  name?: string;
  events?: EventType[];
  timeoutSec?: number;
  digest?: 'daily' | 'weekly' | 'monthly' | null;
}

/**
 * The config schema of each channel type, by `type`: what the config needs of the channel registry
 * (adapters/registry.ts `channelTypes`, which the composition roots pass in).
 */
export type ChannelSchemas = ReadonlyMap<
  string,
  {
    readonly schema: z.ZodType<ChannelSettings, z.ZodTypeDef, unknown>;
    /** Where its parts run (ChannelType.placement): `apply.confirm: ["chat"]` needs a chat channel. */
    placement?(channel: ChannelSettings): { intake: boolean; notifier: string };
  }
>;

/**
 * The configured channels that keep a connection to a chat platform (their adapters run in the chat
 * process and take commands: Slack, Discord): after an activation, each must reconnect for
 * `apply.confirm: ["chat"]`. Unknown when the registry does not tell placements: none.
 */
export function reconnectingChannels(channels: readonly ChannelSettings[], types: ChannelSchemas): string[] {
  return channels
    .filter((c) => {
      const p = types.get(c.type)?.placement?.(c);
      return p?.intake === true && p.notifier === 'chat';
    })
    .map((c) => c.name ?? c.type);
}
