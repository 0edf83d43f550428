import { DeliveryError } from '../ports/channel.js';

/** Reject with a DeliveryError when `p` takes longer than `ms` (the channel's timeout). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeliveryError(`timed out after ${Math.round(ms / 100) / 10} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Delay before the next attempt: `baseSec` doubled per attempt, capped at `maxSec`, with "equal
 * jitter" (between half and all of it) so that retries of many hosts spread out.
 */
export function backoffMs(attempts: number, baseSec: number, maxSec: number, random: () => number): number {
  const base = baseSec * 1000 * 2 ** Math.max(0, attempts - 1);
  return Math.round(Math.min(base, maxSec * 1000) * (0.5 + random() * 0.5));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
