import type {
  APIApplicationCommandOption,
  ButtonInteraction,
  ChatInputCommandInteraction,
  CommandInteractionOption,
  GuildMember,
  GuildMemberRoleManager,
} from 'discord.js';
import type { Actor } from '../../src/audit.js';

/** Discord's "Administrator" permission bit: by default only guild admins see /hv. */
export const ADMINISTRATOR = '8';

const SUBCOMMANDS: { name: string; description: string; options?: APIApplicationCommandOption[] }[] = [
  { name: 'status', description: 'What the host runs, pending updates, last test, generations' },
  { name: 'check-updates', description: 'Check for NixOS updates now' },
  {
    name: 'upgrade-test',
    description: 'Build and test-activate the update; revert on failure',
    options: [
      {
        type: 3,
        name: 'release',
        description: 'Move to this NixOS release first (YY.MM, e.g. 24.11; staging copy only)',
        required: false,
        min_length: 5,
        max_length: 11,
      },
    ],
  },
  { name: 'system-upgrade', description: 'Apply the tested system permanently (admin, asks to confirm)' },
  {
    name: 'rollback',
    description: 'Return to the generation before the last upgrade (admin, asks to confirm)',
    options: [
      { type: 4, name: 'to', description: 'Generation number to return to', required: false, min_value: 1 },
    ],
  },
  { name: 'help', description: 'List the commands' },
];

/**
 * The `/hv` application command with one subcommand per chat command, registered to the guild.
 * `default_member_permissions` hides it from non-admins by default; server admins can re-grant it
 * to anyone, which is why the bus still authorises every call against `chatops.roles`.
 */
export function hvCommandDefinition(host: string): Record<string, unknown> {
  return {
    name: 'hv',
    type: 1,
    description: `NixOS upgrades of ${host}`.slice(0, 100),
    default_member_permissions: ADMINISTRATOR,
    dm_permission: false,
    contexts: [0],
    options: SUBCOMMANDS.map((s) => ({ type: 1, ...s })),
  };
}

/** `/hv rollback to:42` → `["--to", "42"]`: options become CLI words, as the commands parse them. */
export function argvOf(interaction: ChatInputCommandInteraction): { command: string; argv: string[] } {
  const [first] = interaction.options.data;
  if (first?.type !== 1) return { command: 'help', argv: [] };
  return { command: first.name, argv: (first.options ?? []).flatMap(optionWords) };
}

function optionWords(o: CommandInteractionOption): string[] {
  if (o.value === undefined || o.value === null) return [];
  if (typeof o.value === 'boolean') return o.value ? [`--${o.name}`] : [];
  return [`--${o.name}`, String(o.value)];
}

/**
 * The actor of an interaction: `user:<id>` with the member's roles as `role:<id>` groups, so that
 * `discord:user:<id>` and `discord:role:<id>` in `chatops.roles` match (src/bus/authorise.ts).
 */
export function actorOf(interaction: ChatInputCommandInteraction | ButtonInteraction): Actor {
  const user = interaction.user;
  const member = interaction.member;
  let roles: string[] = [];
  if (member) {
    // A GuildMember's roles.cache drops ids missing from the guild's role cache; `_roles` is the
    // member's role list as the interaction carried it.
    const raw = (member as unknown as { _roles?: unknown })._roles;
    roles = Array.isArray(member.roles)
      ? (member.roles as string[])
      : Array.isArray(raw)
        ? raw.map(String)
        : [...((member as GuildMember).roles as GuildMemberRoleManager).cache.keys()];
  }
  // The @everyone role (id = guild id) is implied, as in the raw member object.
  roles = roles.filter((r) => r !== interaction.guildId);
  return {
    channel: 'discord',
    id: `user:${user.id}`,
    display: user.globalName ?? user.username,
    groups: roles.map((r) => `role:${r}`),
  };
}
