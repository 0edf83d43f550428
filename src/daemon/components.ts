import type { ComponentFactory } from './daemon.js';

/**
 * The layers the daemon hosts besides the schedule: the notification delivery loop and the chat
 * adapters with the command bus. Each factory returns the components its layer needs for the
 * current config (none when nothing is configured).
 */
export const daemonComponents: ComponentFactory[] = [];
