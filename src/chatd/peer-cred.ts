/**
 * Who is on the other end of an accepted Unix socket. Node exposes no SO_PEERCRED, so the kernel
 * is asked through sock_diag (`ss -xpn`, iproute2): our end's inode (from /proc/self/fd) names the
 * peer's inode, whose owning processes `ss` lists; their uid comes from /proc/<pid>/status. Only
 * root sees other users' processes, which is where it matters (the engine). Fails closed: any
 * doubt is an error, never a guess.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import type { Socket } from 'node:net';

export interface PeerCred {
  pid: number;
  uid: number;
}

const run = (file: string, args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { encoding: 'utf8', timeout: 5000, maxBuffer: 16 * 1024 * 1024 }, (e, out) =>
      e ? reject(e) : resolve(out),
    ),
  );

/** The inode of our end of `socket` (socket:[N] in /proc/self/fd). */
function localInode(socket: Socket): string {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('cannot find the socket descriptor');
  const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
  if (!m?.[1]) throw new Error('descriptor is not a socket');
  return m[1];
}

function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[2]) throw new Error(`cannot read the uid of process ${pid}`);
  return Number(m[2]); // effective uid
}

/**
 * The process (and its effective uid) holding the other end of `socket`. When several processes
 * share that end (a forked child), all must have the same uid, else it is refused.
 */
export async function peerCred(socket: Socket, ss = 'ss'): Promise<PeerCred> {
  const ours = localInode(socket);
  const table = await run(ss, ['-xpnH']);
  let peer: string | undefined;
  const owners = new Map<string, number[]>();
  for (const line of table.split('\n')) {
    // u_str ESTAB 0 0 <local addr> <local inode> <peer addr> <peer inode> users:(("node",pid=1,fd=2),…)
    const m = /^\S+\s+\S+\s+\d+\s+\d+\s+\S+\s+(\d+)\s+\S+\s+(\d+)(?:\s+users:\((.*)\))?/.exec(line);
    if (!m) continue;
    const [, local, remote, users] = m as unknown as [string, string, string, string | undefined];
    if (local === ours) peer = remote;
    const pids = [...(users ?? '').matchAll(/pid=(\d+)/g)].map((p) => Number(p[1]));
    owners.set(local, pids);
  }
  if (!peer || peer === '0') throw new Error('the peer of the socket is not known to the kernel');
  const pids = owners.get(peer);
  if (!pids?.length) throw new Error('no process holds the peer end (or it is not visible to this user)');
  const uids = new Set(pids.map(uidOf));
  if (uids.size !== 1) throw new Error('processes of different users share the peer end');
  return { pid: pids[0] as number, uid: [...uids][0] as number };
}
