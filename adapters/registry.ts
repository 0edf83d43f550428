import type { AdapterFactory } from './types.js';

/**
 * Every channel type and how to load it. Loading is lazy: a platform library (nodemailer, bolt,
 * discord.js) is imported only when a channel of its type is configured.
 */
export const adapterLoaders = new Map<string, () => Promise<AdapterFactory>>([
  ['motd', async () => (await import('./motd/index.js')).motd],
  ['wall', async () => (await import('./wall/index.js')).wall],
  ['discord', async () => (await import('./discord/index.js')).discord],
  ['email', async () => (await import('./email/index.js')).email],
  ['slack', async () => (await import('./slack/index.js')).slack],
]);

export async function loadAdapter(type: string): Promise<AdapterFactory> {
  const load = adapterLoaders.get(type);
  if (!load)
    throw new Error(
      `unknown channel type "${type}"; must be one of ${[...adapterLoaders.keys()].join(', ')}`,
    );
  return load();
}
