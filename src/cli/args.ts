import { HvError } from '../errors.js';

export interface ParsedArgs {
  command: string | undefined;
  json: boolean;
  config: string | undefined;
  yes: boolean;
  rest: string[];
}

/** Split global flags (`--json`, `--config FILE`, `--yes`) from the command and its own words. */
export function parseGlobal(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { command: undefined, json: false, config: undefined, yes: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--json') out.json = true;
    else if (a === '--yes' || a === '-y') out.yes = true;
    else if (a === '--config' || a.startsWith('--config=')) {
      const v = a.includes('=') ? a.slice('--config='.length) : argv[++i];
      if (!v) throw new HvError('usage', '--config needs a file path');
      out.config = v;
    } else if (out.command === undefined && !a.startsWith('-')) out.command = a;
    else out.rest.push(a);
  }
  return out;
}
