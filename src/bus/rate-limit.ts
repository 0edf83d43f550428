/** A sliding one-minute window per key: at most `perMinute` hits. */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => Date,
  ) {}

  /** Records a hit; returns 0 when allowed, else the milliseconds until the next one is. */
  take(key: string): number {
    const t = this.now().getTime();
    // Keys are attacker-chosen for unknown actors: forget the idle ones so the map stays small.
    if (this.hits.size > 10_000)
      for (const [k, v] of this.hits) if (t - (v.at(-1) ?? 0) >= 60_000) this.hits.delete(k);
    const recent = (this.hits.get(key) ?? []).filter((h) => t - h < 60_000);
    if (recent.length >= this.perMinute) {
      this.hits.set(key, recent);
      return 60_000 - (t - (recent[0] as number));
    }
    recent.push(t);
    this.hits.set(key, recent);
    return 0;
  }
}
