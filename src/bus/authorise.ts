import type { Actor } from '../audit.js';
import { ROLES, type Role } from '../config/schema.js';

/**
 * The `chatops.roles` keys an actor may match: `slack:<team>:<user>`, `discord:user:<id>` and
 * `discord:role:<id>` (from actor.groups), `email:<address>` (case-insensitive).
 */
export function identitiesOf(actor: Actor): string[] {
  switch (actor.channel) {
    case 'slack':
      return [`slack:${actor.id}`];
    case 'discord': {
      const ids = [`discord:${actor.id.startsWith('user:') ? actor.id : `user:${actor.id}`}`];
      for (const g of actor.groups ?? []) ids.push(`discord:${g.startsWith('role:') ? g : `role:${g}`}`);
      return ids;
    }
    case 'email':
      return [`email:${actor.id.toLowerCase()}`];
    default:
      return [];
  }
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
