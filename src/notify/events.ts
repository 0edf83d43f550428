import { randomUUID } from 'node:crypto';
import type { EventType, HvEvent } from '../events.js';

/** Make an event with a fresh id; `key` names the fact so repeats are recognised. */
export function makeEvent(
  type: EventType,
  fields: {
    host: string;
    key: string;
    title: string;
    data?: Record<string, unknown>;
    next?: string;
    detailsFile?: string;
  },
  now: Date = new Date(),
): HvEvent {
  return { id: randomUUID(), type, at: now.toISOString(), data: {}, ...fields };
}
