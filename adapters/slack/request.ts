/**
 * What a Slack request asks, derived the same way by the adapter (in the chat process, from bolt's
 * parsed body) and by the engine's signature verifier (from the signed raw body): both must agree
 * field for field, or the bus refuses the request. No bolt import: the engine loads this file.
 */

/** `/hv upgrade-test --to 42` → `{ command: 'upgrade-test', argv: ['--to', '42'] }`; empty → help. */
export function commandOfText(text: string): { command: string; argv: string[] } {
  const words = text.trim().split(/\s+/).filter(Boolean);
  return { command: words[0] ?? 'help', argv: words.slice(1) };
}

/** The bus's request id of a slash command: unique per workspace and trigger. */
export function slashRequestId(teamId: string, triggerId: string): string {
  return `slack:${teamId}:${triggerId}`;
}

/** The `chatops.roles` identity of a Slack user (`slack:<TEAM>:<USER>` without the prefix). */
export function slackActorId(teamId: string, userId: string): string {
  return `${teamId}:${userId}`;
}

/** The team of a block_actions payload's clicking user, as Slack fills it in. */
export function clickTeam(body: { user?: { team_id?: string }; team?: { id?: string } | null }): string {
  return body.user?.team_id ?? body.team?.id ?? '';
}
