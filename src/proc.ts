/** The outcome of running one program. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the program could not be started at all (e.g. ENOENT). */
  spawnError?: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  /** Called with each line of combined output as it arrives (build progress). */
  onLine?: (line: string) => void;
}

/** Runs programs as argv arrays, never through a shell. Injected so tests can observe calls. */
export interface Runner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/** The umask of the programs hv runs (nix, switch-to-configuration, git): a root shell's. */
export const TOOLS_UMASK = 0o022;

/** The umask of hv's own process (set at every entry point): nothing it creates is group/world-writable. */
export const HV_UMASK = 0o077;

/** The real runner on execa, loaded on first use so that light commands start fast. */
export class ExecaRunner implements Runner {
  constructor(private readonly baseEnv: Record<string, string | undefined> = {}) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const { execa } = await import('execa');
    const [file, ...args] = argv;
    if (!file) throw new Error('empty argv');
    // hv itself runs with umask 077 (its own files); the tools it runs get the umask they would
    // get from a root shell, so that an activation creates /etc files everyone can read. The
    // child inherits the umask at fork, which execa does synchronously here.
    const hvUmask = process.umask(TOOLS_UMASK);
    let child: ReturnType<typeof execa>;
    try {
      child = execa(file, args, {
        cwd: opts.cwd,
        env: { ...this.baseEnv, ...opts.env },
        input: opts.input,
        stdin: opts.input === undefined ? 'ignore' : undefined,
        timeout: opts.timeoutMs,
        reject: false,
        all: true,
        stripFinalNewline: false,
        killSignal: 'SIGTERM',
        forceKillAfterDelay: 5000,
        lines: false,
      });
    } finally {
      process.umask(hvUmask);
    }
    if (opts.onLine) {
      let buf = '';
      child.all?.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let i = buf.indexOf('\n');
        while (i >= 0) {
          opts.onLine?.(buf.slice(0, i));
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
        }
      });
    }
    const r = await child;
    const spawnError =
      r.failed && r.exitCode === undefined && !r.timedOut ? (r.originalMessage ?? r.message) : undefined;
    return {
      exitCode: r.exitCode ?? (r.timedOut ? 124 : 127),
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
      timedOut: Boolean(r.timedOut),
      ...(spawnError ? { spawnError } : {}),
    };
  }
}
