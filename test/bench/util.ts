/** Small helpers the benchmark scripts share: arguments, percentiles, process-tree memory. */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, processTree } from '../fixtures/processes.js';
import { hvBin } from '../fixtures/world.js';

export { freePort, processTree };

/** `--name value` from the command line, as a number. */
export function numArg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/** `--name value` from the command line, as a string. */
export function strArg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? String(process.argv[i + 1]) : def;
}

export function pct(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** `label n=… p50 … p95 … p99 … max …` of latencies in ms. */
export function summary(label: string, xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (n: number) => `${n.toFixed(1)} ms`;
  return `${label.padEnd(14)} n=${s.length}  p50 ${f(pct(s, 50))}  p95 ${f(pct(s, 95))}  p99 ${f(pct(s, 99))}  max ${f(s.at(-1) ?? Number.NaN)}`;
}

export function p99(xs: number[]): number {
  return pct(
    [...xs].sort((a, b) => a - b),
    99,
  );
}

/** Resident memory of one process in MB (0 when it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident memory of `pid` and every descendant, summed: adapters may run in a child process. */
export function treeRssMb(pid: number): { total: number; processes: number; each: string } {
  const pids = processTree(pid);
  const each = pids.map((p) => ({ p, mb: rssMb(p) }));
  return {
    total: each.reduce((sum, x) => sum + x.mb, 0),
    processes: pids.length,
    each: each.map((x) => `${x.p === pid ? 'daemon' : `child ${x.p}`} ${x.mb.toFixed(1)} MB`).join(', '),
  };
}

/** The built `hv daemon` running on a config file, its output kept. */
export interface RunningDaemon {
  pid: number;
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

/**
 * Writes `config` (plus state and log dirs under `dir`) and starts `node dist/bundle/hv.mjs daemon`
 * on it, as the service would run it.
 */
export function startDaemon(dir: string, config: Record<string, unknown>): RunningDaemon {
  for (const d of ['state', 'log']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
  // The chat process (every network-facing adapter) runs as an unprivileged user: nobody when the
  // bench runs as root (as in CI); it must traverse the bench dir to its socket and state dir.
  mkdirSync(join(dir, 'run'), { recursive: true });
  chmodSync(dir, 0o711);
  chmodSync(join(dir, 'run'), 0o711);
  const chatops = {
    ...(process.getuid?.() === 0 ? { user: 'nobody' } : {}),
    socket: join(dir, 'run', 'hv', 'chat.sock'),
    stateDir: join(dir, 'chat-state'),
    ...((config.chatops as Record<string, unknown> | undefined) ?? {}),
  };
  const path = join(dir, 'config.json');
  writeFileSync(
    path,
    JSON.stringify({
      allowNonRoot: true,
      host: 'bench',
      schedule: 'monthly',
      randomizedDelaySec: 0,
      flake: { dir: join(dir, 'flake') },
      paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
      ...config,
      chatops,
    }),
  );
  // HV_BENCH_NODE_ARGS: extra node flags for the daemon, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
  const nodeArgs = process.env.HV_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, hvBin, 'daemon', '--config', path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  return {
    pid: child.pid as number,
    output: () => out,
    exited: () => child.exitCode !== null,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** Resolves once something accepts TCP connections on `port` (the daemon's listener is up). */
export async function waitListening(port: number, daemon: RunningDaemon, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (daemon.exited()) throw new Error(`hv daemon exited:\n${daemon.output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`hv daemon did not listen on ${port} within ${timeoutMs} ms:\n${daemon.output()}`);
}

/**
 * A temp dir with a sandbox config (no root needed, state/log/motd inside it): what a benchmark
 * runs hv against. `extra` is merged over the base config.
 */
export function benchConfig(
  prefix: string,
  extra: Record<string, unknown> = {},
): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      allowNonRoot: true,
      host: 'bench',
      flake: { dir: join(dir, 'flake') },
      paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
      ...extra,
    }),
  );
  return { dir, config };
}
