import { z } from 'zod';
import { Exit } from '../src/errors.js';
import type { Command, CommandResult } from './types.js';

export const auditCommand: Command<{ verify: boolean }> = {
  name: 'audit',
  summary: 'verify the hash-chained audit log',
  usage: 'hv audit --verify [--json]',
  role: 'admin',
  cliOnly: true,
  flags: { verify: 'boolean' },
  args: z.strictObject({ verify: z.boolean().default(false) }),
  async run({ services }, args): Promise<CommandResult> {
    if (!args.verify)
      return { status: 'error', exitCode: Exit.usage, message: 'usage: hv audit --verify', data: {} };
    const v = services.audit.verify();
    return v.ok
      ? {
          status: 'ok',
          exitCode: Exit.ok,
          message: `audit log intact: ${v.records} records (${services.audit.file})`,
          data: v,
        }
      : {
          status: 'failed',
          exitCode: Exit.failed,
          message: `audit log has been tampered with (${services.audit.file}):\n${v.problems.join('\n')}`,
          data: v,
        };
  },
};
