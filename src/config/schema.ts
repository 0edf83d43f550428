import { hostname } from 'node:os';
import { z } from 'zod';
import { AbsPath, Argv, type ChannelSchemas, type ChannelSettings, reconnectingChannels } from './fields.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The identities `chatops.roles` can name, exactly as the adapters put them into an actor
 * (src/bus/authorise.ts): a key of any other form would never match anyone, so it is an error.
 */
export const ROLE_KEY_FORMS: readonly { form: string; pattern: RegExp }[] = [
  { form: 'slack:<TEAM>:<USER> (Slack ids, e.g. slack:T0123:U0456)', pattern: /^slack:[A-Z0-9]+:[A-Z0-9]+$/ },
  { form: 'discord:user:<id>', pattern: /^discord:user:\d{1,20}$/ },
  { form: 'discord:role:<id>', pattern: /^discord:role:\d{1,20}$/ },
  { form: 'email:<address>', pattern: /^email:[^\s@]+@[^\s@]+$/ },
];

export function isRoleKey(key: string): boolean {
  return ROLE_KEY_FORMS.some((f) => f.pattern.test(key));
}

/** A channel entry: validated by the schema of its `type` (the registry the composition root passes). */
const channelEntry = (channelTypes: ChannelSchemas) =>
  z.unknown().transform((value, ctx): ChannelSettings => {
    const type = (value as { type?: unknown } | null)?.type;
    const allowed = [...channelTypes.keys()].join(', ');
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: `must be an object with a "type" (one of ${allowed})` });
      return z.NEVER;
    }
    const schema = typeof type === 'string' ? channelTypes.get(type)?.schema : undefined;
    if (!schema) {
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: `${JSON.stringify(type)} is not a channel type; must be one of ${allowed}`,
      });
      return z.NEVER;
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      // Keep each issue as it is (code, path) so the message names the key and what is allowed.
      for (const issue of parsed.error.issues) ctx.addIssue(issue as Parameters<typeof ctx.addIssue>[0]);
      return z.NEVER;
    }
    const channel: ChannelSettings = parsed.data;
    return { ...channel, name: channel.name ?? channel.type };
  });

const HealthCommand = z.strictObject({
  name: z.string().min(1),
  argv: Argv,
  timeoutSec: z.number().positive().max(3600).default(30),
});

/** The kinds of evidence `apply.confirm` names (src/engine/confirm-window.ts EvidenceKind). */
export const CONFIRM_KINDS = ['chat', 'probes', 'human'] as const;

/** `host:port`, with an IPv6 address in brackets: what a TCP probe connects to. */
const HostPort = z
  .string()
  .regex(
    /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/,
    'must be "host:port" (an IPv6 address in brackets: "[fd00::1]:22")',
  )
  .refine((v) => {
    const port = Number(v.slice(v.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65_535;
  }, 'the port must be 1-65535');

/**
 * A reachability probe: a command run without a shell (`argv`, passes on exit 0) or a TCP connect
 * (`tcp`), each with a timeout.
 */
const Probe = z
  .strictObject({
    name: z.string().min(1).max(100).optional(),
    argv: Argv.optional(),
    tcp: HostPort.optional(),
    timeoutSec: z.number().positive().max(60).default(5),
  })
  .refine((p) => (p.argv === undefined) !== (p.tcp === undefined), {
    message:
      'a probe needs exactly one of "argv" (a command, e.g. ["ping", "-c1", "-W2", "10.0.0.1"]) or "tcp" ("host:port")',
  });
export type ProbeConfig = z.output<typeof Probe>;

const defaultChannels = [
  { type: 'motd', name: 'motd' },
  { type: 'wall', name: 'wall', command: ['wall', '-g', 'wheel'] },
];

/**
 * The whole configuration file (SPEC "Configuration"). Unknown keys are errors. The channel types
 * are passed in by the composition roots (adapters/registry.ts), so the core names no adapter.
 */
export const configSchema = (channelTypes: ChannelSchemas) =>
  z
    .strictObject({
      /** Which nixosConfigurations.<host> this is; unset: found by resolveConfiguration. */
      host: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/, 'must be a NixOS configuration name (letters, digits, "_", "-", ".")')
        .optional(),
      allowNonRoot: z.boolean().default(false),
      flake: z
        .strictObject({
          dir: AbsPath.default('/etc/hypervisor'),
          input: z
            .string()
            .regex(/^[A-Za-z0-9_-]+$/, 'must be a flake input name')
            .default('nixpkgs'),
        })
        .default({}),
      paths: z
        .strictObject({
          state: AbsPath.default('/var/lib/hypervisor'),
          log: AbsPath.default('/var/log/hypervisor'),
          motd: AbsPath.default('/etc/motd.d/updates-available'),
          profile: AbsPath.default('/nix/var/nix/profiles/system'),
          currentSystem: AbsPath.default('/run/current-system'),
          bootedSystem: AbsPath.default('/run/booted-system'),
          gcRoots: AbsPath.default('/nix/var/nix/gcroots/hypervisor'),
        })
        .default({}),
      nix: z.strictObject({ extraArgs: z.array(z.string()).default([]) }).default({}),
      /** Executables hv runs; names are looked up on PATH. */
      tools: z
        .strictObject({
          nix: z.string().min(1).default('nix'),
          nixEnv: z.string().min(1).default('nix-env'),
          git: z.string().min(1).default('git'),
          systemctl: z.string().min(1).default('systemctl'),
          nixosVersion: z.string().min(1).default('nixos-version'),
        })
        .default({}),
      test: z
        .strictObject({
          maxAgeDays: z.number().positive().max(365).default(7),
          /** Package names highlighted in what an upgrade changes, beyond kernel, QEMU, libvirt, systemd, glibc and OVMF. */
          watch: z
            .array(
              z
                .string()
                .regex(/^[A-Za-z0-9][A-Za-z0-9+._-]*$/, 'a package name such as "zfs" or "openvswitch"'),
            )
            .max(100)
            .default([]),
          healthChecks: z
            .strictObject({
              services: z.array(z.string().min(1)).default(['libvirtd']),
              vms: z.strictObject({ command: Argv }).nullable().default(null),
              commands: z.array(HealthCommand).default([]),
              /** Seconds to let units settle after activation before checking. */
              settleSec: z.number().min(0).max(600).default(2),
            })
            .default({}),
        })
        .default({}),
      apply: z
        .strictObject({
          operation: z.enum(['switch', 'boot']).default('switch'),
          /**
           * The dead-man confirmation window (SPEC "Engine rules"): which evidence from outside the
           * host keeps an activation (any one of them); empty: no window, as before.
           */
          confirm: z
            .array(z.enum(CONFIRM_KINDS))
            .max(3)
            .default([])
            .refine((a) => new Set(a).size === a.length, 'lists a kind of evidence twice'),
          /** Seconds the evidence may take after the activation before it is undone. */
          confirmWithinSec: z.number().int('must be whole seconds').min(2).max(3600).default(120),
          /** Reachability probes for `confirm: ["probes"]`: all must pass. */
          probes: z.array(Probe).max(20).default([]),
        })
        .default({})
        .superRefine((a, ctx) => {
          if (a.confirm.includes('probes') && !a.probes.length)
            ctx.addIssue({
              code: 'custom',
              path: ['probes'],
              message:
                'apply.confirm lists "probes" but apply.probes is empty; add probes such as { "argv": ["ping", "-c1", "-W2", "10.0.0.1"] } or { "tcp": "10.0.0.1:22" }, or remove "probes" from apply.confirm',
            });
        }),
      backup: z
        .strictObject({
          paths: z.array(AbsPath).default(['/etc/nixos']),
          keep: z.number().int().min(1).max(1000).default(10),
        })
        .default({}),
      /** Checked by `checkSchedule` (src/config/load.ts): its parser loads node-cron, kept off the fast path. */
      schedule: z.string().min(1).default('monthly'),
      randomizedDelaySec: z
        .number()
        .int()
        .min(0)
        .max(86_400 * 7)
        .default(3600),
      notify: z
        .strictObject({
          channels: z.array(channelEntry(channelTypes)).default(defaultChannels),
          /** Days after which an unchanged pending update is announced again; null: never. */
          reminderDays: z.number().positive().nullable().default(null),
          maxAttempts: z.number().int().min(1).max(100).default(8),
          timeoutSec: z.number().positive().max(600).default(30),
          /** First retry delay; doubles per attempt (with jitter) up to `maxBackoffSec`. */
          backoffSec: z.number().positive().max(86_400).default(30),
          maxBackoffSec: z
            .number()
            .positive()
            .max(86_400 * 7)
            .default(3600),
        })
        .default({})
        .superRefine((n, ctx) => {
          const seen = new Set<string>();
          n.channels.forEach((c, i) => {
            const name = c.name ?? c.type;
            if (seen.has(name))
              ctx.addIssue({
                code: 'custom',
                path: ['channels', i, 'name'],
                message: `duplicate channel name "${name}"; give each channel a unique "name"`,
              });
            seen.add(name);
          });
        }),
      chatops: z
        .strictObject({
          roles: z
            .record(
              z.string().refine(isRoleKey, (key) => ({
                message: `${JSON.stringify(key)} is not a role key; accepted forms: ${ROLE_KEY_FORMS.map((f) => f.form).join(', ')} (no spaces anywhere)`,
              })),
              z.enum(ROLES),
            )
            .default({}),
          approvals: z
            .strictObject({
              'system-upgrade': z.number().int().min(1).max(5).default(1),
              rollback: z.number().int().min(1).max(5).default(1),
            })
            .default({}),
          confirmTimeoutSec: z.number().int().min(10).max(3600).default(300),
          ratePerMinute: z.number().int().min(1).max(1000).default(20),
          /**
           * The unprivileged user the chat process (every network-facing adapter) runs as when the
           * daemon runs as root. Ignored when the daemon is not root: it then runs as the same user.
           */
          user: z
            .string()
            .regex(/^[a-z_][a-z0-9_-]*$/, 'must be a user name (lower-case letters, digits, "_", "-")')
            .default('hv-chat'),
          /** The engine's Unix socket the chat process connects to (its dir is made root:<user> 0750). */
          socket: AbsPath.default('/run/hypervisor/chat.sock'),
          /** The chat process's own writable dir (mail spool, delivery journal); owned by `user`. */
          stateDir: AbsPath.default('/var/lib/hv-chat'),
          /**
           * Who starts the chat process: the daemon (spawned as `user`, restarted with backoff), or
           * systemd (the NixOS module's hv-chat.service; secrets then come by LoadCredential).
           */
          supervise: z.enum(['daemon', 'systemd']).default('daemon'),
        })
        .default({}),
    })
    .superRefine((c, ctx) => {
      // A window only chat could confirm, with no chat channel to reconnect, would undo every activation.
      const canAsk = [...channelTypes.values()].some((t) => t.placement);
      if (
        canAsk &&
        c.apply.confirm.includes('chat') &&
        !reconnectingChannels(c.notify.channels, channelTypes).length
      )
        ctx.addIssue({
          code: 'custom',
          path: ['apply', 'confirm'],
          message:
            'lists "chat" but no chat channel (slack or discord in notify.channels) is configured to reconnect; configure one, or use "probes" or "human"',
        });
    })
    // The display name is always known; whether it was configured decides how strictly it must match
    // a configuration of the flake (engine/configurations.ts).
    .transform((c) => ({
      ...c,
      host: c.host ?? hostname(),
      hostSource: (c.host === undefined ? 'hostname' : 'config') as 'hostname' | 'config',
    }));
export type Config = z.output<ReturnType<typeof configSchema>>;
export type ConfigInput = z.input<ReturnType<typeof configSchema>>;
