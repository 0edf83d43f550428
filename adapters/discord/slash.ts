import type {
  APIApplicationCommandOption,
  ButtonInteraction,
  ChatInputCommandInteraction,
  CommandInteractionOption,
} from 'discord.js';
import type { Actor } from '../../src/audit.js';
import type { ServedCommand } from '../../src/bus/types.js';
import { type CommandOption, commandOptions } from '../../src/command-options.js';

/** Discord's "Administrator" permission bit: by default only guild admins see /hv. */
export const ADMINISTRATOR = '8';

/** Discord's limits on application commands: 25 options each, descriptions of 1-100 characters. */
const MAX_OPTIONS = 25;
const MAX_DESCRIPTION = 100;
const MAX_CHOICES = 25;

/** Option types of the Discord API: STRING, INTEGER, BOOLEAN, NUMBER. */
const OPTION_TYPE = { string: 3, integer: 4, boolean: 5, number: 10 } as const;

function clip(text: string, limit = MAX_DESCRIPTION): string {
  const t = text.trim() || '-';
  return t.length > limit ? `${t.slice(0, limit - 1)}…` : t;
}

/** A command's argument as a Discord option: type, choices, bounds, description. */
function discordOption(o: CommandOption): APIApplicationCommandOption {
  const base = {
    type: OPTION_TYPE[o.kind],
    name: o.name.toLowerCase().slice(0, 32),
    description: clip(o.description),
    required: o.required,
  };
  const bounds = {
    ...(o.min === undefined ? {} : { min_value: o.min }),
    ...(o.max === undefined ? {} : { max_value: o.max }),
  };
  const choices = o.choices?.length
    ? { choices: o.choices.slice(0, MAX_CHOICES).map((c) => ({ name: c, value: c })) }
    : {};
  return { ...base, ...bounds, ...choices } as APIApplicationCommandOption;
}

/** A chat command as a `/hv` subcommand; Discord wants the required options first. */
function subcommand(cmd: ServedCommand): Record<string, unknown> {
  const options = commandOptions(cmd)
    .map(discordOption)
    .sort((a, b) => Number(b.required ?? false) - Number(a.required ?? false))
    .slice(0, MAX_OPTIONS);
  return {
    type: 1,
    name: cmd.name,
    description: clip(`${cmd.summary}${cmd.confirm ? ' (admin, asks to confirm)' : ''}`),
    ...(options.length ? { options } : {}),
  };
}

/**
 * The `/hv` application command with one subcommand per chat command the bus serves (its options
 * derived from the command's argument schema), registered to the guild.
 * `default_member_permissions` hides it from non-admins by default; server admins can re-grant it
 * to anyone, which is why the bus still authorises every call against `chatops.roles`.
 */
export function hvCommandDefinition(
  host: string,
  commands: readonly ServedCommand[],
): Record<string, unknown> {
  return {
    name: 'hv',
    type: 1,
    description: clip(`NixOS upgrades of ${host}`),
    default_member_permissions: ADMINISTRATOR,
    dm_permission: false,
    contexts: [0],
    options: commands.slice(0, MAX_OPTIONS).map(subcommand),
  };
}

/**
 * `/hv rollback to:42` → `["--to", "42"]`: options become CLI words by name (positionals too:
 * the parser takes `--action list`), as the commands parse them.
 */
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

/** The member's role ids as the interaction carried them (the @everyone role excluded). */
function memberRoles(interaction: ChatInputCommandInteraction | ButtonInteraction): string[] {
  // In a cached guild discord.js gives a GuildMember (its role manager resolves the ids against
  // the guild's roles, which the Guilds intent keeps current); otherwise the API's raw member
  // object, whose `roles` is the list of ids.
  if (interaction.inCachedGuild()) return [...interaction.member.roles.cache.keys()];
  if (interaction.inRawGuild()) return [...interaction.member.roles];
  return [];
}

/**
 * The actor of an interaction: `user:<id>` with the member's roles as `role:<id>` groups, so that
 * `discord:user:<id>` and `discord:role:<id>` in `chatops.roles` match (src/bus/authorise.ts).
 */
export function actorOf(interaction: ChatInputCommandInteraction | ButtonInteraction): Actor {
  const user = interaction.user;
  // The @everyone role (id = guild id) is implied, as in the raw member object.
  const roles = memberRoles(interaction).filter((r) => r !== interaction.guildId);
  return {
    channel: 'discord',
    id: `user:${user.id}`,
    display: user.globalName ?? user.username,
    groups: roles.map((r) => `role:${r}`),
  };
}
