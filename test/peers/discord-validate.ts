/** Discord's documented message limits, enforced as the real API does (400, code 50035). */
export const DISCORD_LIMITS = {
  content: 2000,
  embeds: 10,
  embedTotal: 6000,
  title: 256,
  description: 4096,
  fields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footerText: 2048,
  authorName: 256,
  actionRows: 5,
  rowComponents: 5,
  customId: 100,
  buttonLabel: 80,
} as const;

/** Discord's error body: `{ code, message, errors? }`, errors nested by field path with `_errors` leaves. */
export interface DiscordErrorBody {
  code: number;
  message: string;
  errors?: Record<string, unknown>;
}

type Json = Record<string, unknown>;
interface FieldError {
  path: (string | number)[];
  code: string;
  message: string;
}

/**
 * Checks a create/edit message body. `requireSomething` is true for creates, where Discord
 * rejects a message with nothing in it (50006).
 */
export function validateMessageBody(body: Json, requireSomething: boolean): DiscordErrorBody | undefined {
  const problems: FieldError[] = [];
  const content = body.content;
  if (typeof content === 'string' && content.length > DISCORD_LIMITS.content) {
    problems.push(tooLong(['content'], DISCORD_LIMITS.content));
  }
  const embeds = Array.isArray(body.embeds) ? (body.embeds as Json[]) : [];
  if (embeds.length > DISCORD_LIMITS.embeds) problems.push(tooLong(['embeds'], DISCORD_LIMITS.embeds));
  let total = 0;
  embeds.forEach((embed, i) => {
    total += checkEmbed(embed, ['embeds', i], problems);
  });
  if (total > DISCORD_LIMITS.embedTotal) {
    problems.push({
      path: ['embeds'],
      code: 'MAX_EMBED_SIZE_EXCEEDED',
      message: `Embed size exceeds maximum size of ${DISCORD_LIMITS.embedTotal}`,
    });
  }
  const rows = Array.isArray(body.components) ? (body.components as Json[]) : [];
  if (rows.length > DISCORD_LIMITS.actionRows)
    problems.push(tooLong(['components'], DISCORD_LIMITS.actionRows));
  rows.forEach((row, i) => {
    checkRow(row, ['components', i], problems);
  });

  if (problems.length > 0) return { code: 50035, message: 'Invalid Form Body', errors: nest(problems) };
  const hasSomething =
    (typeof content === 'string' && content.length > 0) ||
    embeds.length > 0 ||
    rows.length > 0 ||
    (Array.isArray(body.attachments) && body.attachments.length > 0) ||
    (Array.isArray(body.sticker_ids) && body.sticker_ids.length > 0) ||
    body.poll !== undefined;
  if (requireSomething && !hasSomething) return { code: 50006, message: 'Cannot send an empty message' };
  return undefined;
}

function checkEmbed(embed: Json, path: (string | number)[], problems: FieldError[]): number {
  let size = 0;
  const text = (value: unknown, name: (string | number)[], max: number): void => {
    if (typeof value !== 'string') return;
    size += value.length;
    if (value.length > max) problems.push(tooLong([...path, ...name], max));
  };
  text(embed.title, ['title'], DISCORD_LIMITS.title);
  text(embed.description, ['description'], DISCORD_LIMITS.description);
  text((embed.footer as Json | undefined)?.text, ['footer', 'text'], DISCORD_LIMITS.footerText);
  text((embed.author as Json | undefined)?.name, ['author', 'name'], DISCORD_LIMITS.authorName);
  const fields = Array.isArray(embed.fields) ? (embed.fields as Json[]) : [];
  if (fields.length > DISCORD_LIMITS.fields)
    problems.push(tooLong([...path, 'fields'], DISCORD_LIMITS.fields));
  fields.forEach((field, j) => {
    text(field.name, ['fields', j, 'name'], DISCORD_LIMITS.fieldName);
    text(field.value, ['fields', j, 'value'], DISCORD_LIMITS.fieldValue);
  });
  return size;
}

function checkRow(row: Json, path: (string | number)[], problems: FieldError[]): void {
  const children = Array.isArray(row.components) ? (row.components as Json[]) : [];
  if (children.length > DISCORD_LIMITS.rowComponents) {
    problems.push(tooLong([...path, 'components'], DISCORD_LIMITS.rowComponents));
  }
  children.forEach((child, k) => {
    const at = [...path, 'components', k];
    if (typeof child.custom_id === 'string' && child.custom_id.length > DISCORD_LIMITS.customId) {
      problems.push(tooLong([...at, 'custom_id'], DISCORD_LIMITS.customId));
    }
    if (typeof child.label === 'string' && child.label.length > DISCORD_LIMITS.buttonLabel) {
      problems.push(tooLong([...at, 'label'], DISCORD_LIMITS.buttonLabel));
    }
  });
}

function tooLong(path: (string | number)[], max: number): FieldError {
  return { path, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${max} or fewer in length.` };
}

function nest(problems: FieldError[]): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const problem of problems) {
    let node = root;
    for (const key of problem.path) {
      const name = String(key);
      node[name] ??= {};
      node = node[name] as Record<string, unknown>;
    }
    node._errors ??= [];
    (node._errors as { code: string; message: string }[]).push({
      code: problem.code,
      message: problem.message,
    });
  }
  return root;
}
