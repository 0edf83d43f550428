import type { Actor } from '../audit.js';
import { ROLES, type Role } from '../config/schema.js';

/**
 * The `chatops.roles` keys an actor may match: `<platform>:<id>` and `<platform>:<group>` for each
 * of its groups — e.g. `slack:T0123:U0456`, `discord:user:1111`, `discord:role:2222`,
 * `email:alice@example.org`. Each adapter puts its platform's identity into `actor.id` and
 * `actor.groups` in that form, so a new platform needs no change here. The CLI and the daemon are
 * never authorised by roles.
 */
export function identitiesOf(actor: Actor): string[] {
  if (actor.channel === 'cli' || actor.channel === 'daemon') return [];
  const norm = (v: string) => (actor.channel === 'email' ? v.toLowerCase() : v);
  return [actor.id, ...(actor.groups ?? [])].map((v) => `${actor.channel}:${norm(v)}`);
}

/** The highest role any of the actor's identities has; undefined: unknown (deny by default). */
export function roleOf(actor: Actor, roles: Record<string, Role>): Role | undefined {
  const lower = new Map(
    Object.entries(roles).map(([k, v]) => [k.startsWith('email:') ? k.toLowerCase() : k, v]),
  );
  let best: Role | undefined;
  for (const id of identitiesOf(actor)) {
    const r = lower.get(id);
    if (r && (!best || rank(r) > rank(best))) best = r;
  }
  return best;
}

export function rank(role: Role): number {
  return ROLES.indexOf(role);
}

/** True when `have` is at least `need` (viewer < operator < admin). */
export function atLeast(have: Role | undefined, need: Role): boolean {
  return have !== undefined && rank(have) >= rank(need);
}

/** A stable key for one actor (rate limits, distinct approvers). */
export function actorKey(actor: Actor): string {
  return `${actor.channel}:${actor.id}`;
}
