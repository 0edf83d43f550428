/** Small helpers the benchmark scripts share: arguments, percentiles, process-tree memory. */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

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

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** `pid` and all its descendants, from /proc/*\/stat (ppid is the 4th field, after `(comm)`). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift() as number;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
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
export function treeRssMb(pid: number): { total: number; processes: number } {
  const pids = processTree(pid);
  return { total: pids.reduce((sum, p) => sum + rssMb(p), 0), processes: pids.length };
}
