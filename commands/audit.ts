import { z } from 'zod';
import { HV } from '../src/cli-name.js';
import { Exit } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

export const auditCommand: Command<{ verify: boolean }> = {
  name: 'audit',
  summary: 'verify the keyed (HMAC) audit log',
  role: 'admin',
  cliOnly: true,
  args: z.strictObject({
    verify: z.boolean().default(false).describe('check every record and the chain against the audit key'),
  }),
  async run({ services }, args): Promise<CommandResult> {
    if (!args.verify)
      return { status: 'error', exitCode: Exit.usage, message: `usage: ${HV} audit --verify`, data: {} };
    const v = await services.audit.verify();
    const file = services.audit.file;
    const data = { ...v, file };
    if (!v.ok)
      return {
        status: 'failed',
        exitCode: Exit.failed,
        message: `audit log failed verification (${file}):\n${v.problems.join('\n')}\nThe records cannot be trusted past the first problem; find out who changed the state directory.`,
        data,
      };
    const sealed =
      v.legacyRecords > 0 ? `; the first ${v.legacyRecords} from an earlier hv, sealed under the key` : '';
    return {
      status: 'ok',
      exitCode: Exit.ok,
      message:
        v.records === 0
          ? `audit log intact: 0 records, no operations recorded yet (${file})`
          : `audit log intact: ${v.records} records, keyed (HMAC-SHA256)${sealed} (${file})`,
      data,
    };
  },
};
