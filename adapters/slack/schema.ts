import { z } from 'zod';
import { AbsPath, channelBase } from '../../src/config/fields.js';

/** Slack through @slack/bolt: Socket Mode (default, outbound only) or HTTP mode. */
export const SlackChannel = z
  .strictObject({
    type: z.literal('slack'),
    ...channelBase,
    mode: z.enum(['socket', 'http']).default('socket'),
    botTokenFile: AbsPath,
    appTokenFile: AbsPath.optional(),
    signingSecretFile: AbsPath.optional(),
    port: z.number().int().min(1).max(65535).default(3000),
    /** HTTP mode: the address to listen on; loopback, with a TLS reverse proxy in front. */
    address: z.string().min(1).default('127.0.0.1'),
    /** HTTP mode: larger request bodies are refused (413) before they are read; Slack's are a few KB. */
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(4 * 1024 * 1024)
      .default(100 * 1024),
    /**
     * HTTP mode: open connections at most (further ones are closed at accept). Bodies are limited
     * (maxBodyBytes), so this bounds memory at maxConnections × maxBodyBytes; it is set above a
     * flood of 200 senders so that Slack's own requests still get a connection (a reverse proxy
     * in front should limit per client too).
     */
    maxConnections: z.number().int().min(1).max(10_000).default(256),
    /** Channel ID that receives notifications. */
    channel: z.string().min(1),
    /** Web API base URL, e.g. https://slack.com/api/ (point at a local peer in tests). */
    apiUrl: z.string().url().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'socket' && !c.appTokenFile)
      ctx.addIssue({ code: 'custom', path: ['appTokenFile'], message: 'is required when mode is "socket"' });
    if (c.mode === 'http' && !c.signingSecretFile)
      ctx.addIssue({
        code: 'custom',
        path: ['signingSecretFile'],
        message: 'is required when mode is "http"',
      });
  });
export type SlackChannel = z.infer<typeof SlackChannel>;
