import { createHash } from 'node:crypto';
import { DiscordAPIError, RateLimitError, type REST, type RESTOptions, Routes } from 'discord.js';
import { errorMessage, HvError } from '../../src/errors.js';
import type { HvEvent } from '../../src/events.js';
import { type Delivery, DeliveryError } from '../../src/ports/channel.js';
import { eventMessages } from './render.js';
import type { DiscordChannel } from './schema.js';

/**
 * REST options pointing discord.js at `apiUrl`, and, with `gatewayUrl`, answering GET /gateway/bot
 * with that URL (discord.js 14 takes the gateway address only from there).
 */
export function restOptions(channel: DiscordChannel): Partial<RESTOptions> {
  const opts: Partial<RESTOptions> = {};
  if (channel.apiUrl) opts.api = channel.apiUrl.replace(/\/+$/, '');
  const gatewayUrl = channel.gatewayUrl;
  if (gatewayUrl) {
    opts.makeRequest = async (url, init) => {
      const res = await fetch(url, init as RequestInit);
      if (!res.ok || !new URL(url).pathname.endsWith('/gateway/bot')) return res;
      const info = (await res.json()) as Record<string, unknown>;
      const headers = new Headers(res.headers);
      headers.delete('content-length');
      headers.delete('content-encoding');
      return new Response(JSON.stringify({ ...info, url: gatewayUrl }), { status: res.status, headers });
    };
  }
  return opts;
}

/** A 25-character nonce per notification part: Discord drops a repeat with `enforce_nonce`. */
function nonceFor(deliveryId: string, part: number): string {
  return createHash('sha256').update(`${deliveryId}:${part}`).digest('hex').slice(0, 25);
}

/** Maps a REST failure to what the outbox should do with it. */
export function deliveryErrorOf(e: unknown, channel: DiscordChannel): DeliveryError {
  if (e instanceof DeliveryError) return e;
  if (e instanceof RateLimitError)
    return new DeliveryError(`Discord rate limit (${e.scope}, ${e.route})`, Math.ceil(e.retryAfter));
  if (e instanceof HvError) return new DeliveryError(e.message, undefined, true);
  if (e instanceof DiscordAPIError) {
    const code = Number(e.code);
    if (e.status === 429) {
      const raw = e.rawError as { retry_after?: number };
      return new DeliveryError('Discord rate limit', Math.ceil((raw.retry_after ?? 1) * 1000));
    }
    if (e.status === 401)
      return new DeliveryError(
        `Discord rejected the bot token (401); put a valid bot token in ${channel.tokenFile}`,
        undefined,
        true,
      );
    if (e.status === 403)
      return new DeliveryError(
        `the bot may not post in channel ${channel.channelId} (${code} ${e.message}); give it View Channel, Send Messages and Embed Links there`,
        undefined,
        true,
      );
    if (e.status === 404)
      return new DeliveryError(
        `Discord channel ${channel.channelId} not found (${code}); check channelId`,
        undefined,
        true,
      );
    if (e.status >= 400 && e.status < 500)
      return new DeliveryError(
        `Discord refused the message (${e.status} ${code} ${e.message})`,
        undefined,
        true,
      );
  }
  return new DeliveryError(`Discord request failed: ${errorMessage(e)}`);
}

/**
 * Notifications as embeds in the configured channel. A notification too long for one message is
 * several messages; a retry after a failure part-way sends only the parts not yet posted, and each
 * part carries a nonce with `enforce_nonce` so that Discord itself drops a repeat (e.g. a retry by a
 * restarted daemon).
 */
export class DiscordNotifier {
  /** Parts of a multi-message notification already posted, by delivery id. */
  private readonly sentParts = new Map<string, Set<number>>();

  constructor(
    /** Must be built with `rejectOnRateLimit` and no retries: the outbox owns the backoff. */
    private readonly rest: REST,
    private readonly channel: DiscordChannel,
  ) {}

  async deliver(event: HvEvent, delivery: Delivery): Promise<void> {
    const bodies = eventMessages(event);
    const sent = this.sentParts.get(delivery.id) ?? new Set<number>();
    for (const [i, body] of bodies.entries()) {
      if (sent.has(i)) continue;
      try {
        await this.rest.post(Routes.channelMessages(this.channel.channelId), {
          body: { ...body, nonce: nonceFor(delivery.id, i), enforce_nonce: true },
        });
      } catch (e) {
        if (sent.size) this.remember(delivery.id, sent);
        throw deliveryErrorOf(e, this.channel);
      }
      sent.add(i);
    }
    this.sentParts.delete(delivery.id);
  }

  private remember(id: string, parts: Set<number>): void {
    this.sentParts.set(id, parts);
    if (this.sentParts.size > 500) {
      const oldest = this.sentParts.keys().next().value;
      if (oldest !== undefined) this.sentParts.delete(oldest);
    }
  }
}
