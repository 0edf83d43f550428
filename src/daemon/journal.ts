/** The daemon's log: one line per event, `level message key=value…`, no colour. */
export type JournalLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

// syslog priorities, understood by journald on stderr (sd-daemon(3) prefixes)
const PRIORITY = { error: 3, warn: 4, info: 6 } as const;

function fmt(fields: Record<string, unknown> | undefined): string {
  if (!fields) return '';
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) => ` ${k}=${typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v)}`,
    )
    .join('');
}

/**
 * Under systemd (JOURNAL_STREAM set) each line carries a `<N>` priority prefix; elsewhere a
 * timestamp instead. Multi-line values are JSON-escaped so one event stays one line.
 */
export function journalLog(
  stream: NodeJS.WritableStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): JournalLog {
  const journald = Boolean(env.JOURNAL_STREAM);
  return (level, msg, fields) => {
    const head = journald ? `<${PRIORITY[level]}>` : `${new Date().toISOString()} `;
    stream.write(`${head}${level} ${msg}${fmt(fields)}\n`);
  };
}
