import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';

/** Gateway opcodes used here (Discord API v10). */
export const Op = {
  Dispatch: 0,
  Heartbeat: 1,
  Identify: 2,
  PresenceUpdate: 3,
  VoiceStateUpdate: 4,
  Resume: 6,
  Reconnect: 7,
  RequestGuildMembers: 8,
  InvalidSession: 9,
  Hello: 10,
  HeartbeatAck: 11,
} as const;

/** One frame in either direction, parsed. */
export interface GatewayFrame {
  direction: 'in' | 'out';
  connection: number;
  op: number;
  t: string | null;
  s: number | null;
  d: unknown;
  at: number;
}

/** How a client connected: path ('/' first, '/resume' when it used resume_gateway_url) and query. */
export interface GatewayConnectionInfo {
  id: number;
  path: string;
  query: Record<string, string>;
  openedAt: number;
}

export interface GatewayConfig {
  token: string;
  heartbeatIntervalMs: number;
  /** The READY `d` for a new session. */
  ready(sessionId: string): Record<string, unknown>;
  /** GUILD_CREATE payloads sent right after READY. */
  guilds(): Record<string, unknown>[];
}

interface Session {
  id: string;
  seq: number;
  /** Dispatches kept for replay on RESUME. */
  log: { s: number; t: string; d: unknown }[];
  socket: Socket | undefined;
}

interface Socket {
  id: number;
  ws: WebSocket;
  session: Session | undefined;
}

const LOG_LIMIT = 1_000;

/** The gateway side of a DiscordPeer: sessions, sequence numbers, resume and replay. */
export class DiscordGateway {
  readonly frames: GatewayFrame[] = [];
  readonly connections: GatewayConnectionInfo[] = [];
  identifies = 0;
  resumes = 0;
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Map<number, Socket>();

  constructor(private readonly config: GatewayConfig) {}

  /** Sessions that have an open socket right now. */
  get liveSessions(): number {
    return [...this.sessions.values()].filter((s) => s.socket !== undefined).length;
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  accept(ws: WebSocket, path: string, query: URLSearchParams): void {
    const socket: Socket = { id: this.connections.length + 1, ws, session: undefined };
    this.connections.push({ id: socket.id, path, query: Object.fromEntries(query), openedAt: Date.now() });
    this.sockets.set(socket.id, socket);
    ws.on('message', (data) => this.onMessage(socket, data.toString()));
    ws.on('close', (code) => this.onClose(socket, code));
    ws.on('error', () => undefined);
    if (query.get('v') !== '10') {
      ws.close(4012, 'Invalid API version');
      return;
    }
    // No compression is offered: discord.js only asks for zlib-stream when zlib-sync is installed,
    // and it parses text frames as plain JSON whatever it asked for.
    if ((query.get('encoding') ?? 'json') !== 'json') {
      ws.close(4002, 'Error while decoding payload.');
      return;
    }
    this.send(socket, { op: Op.Hello, d: { heartbeat_interval: this.config.heartbeatIntervalMs } });
  }

  /** Sends a dispatch to every session (kept for replay if its socket is down); returns how many. */
  dispatch(t: string, d: unknown): number {
    for (const session of this.sessions.values()) this.dispatchTo(session, t, d);
    return this.sessions.size;
  }

  /** Closes every socket: abruptly (default) or with a close code (4000 resumes, 1000 re-identifies). */
  drop(code?: number): void {
    for (const { ws } of this.sockets.values()) {
      if (code === undefined) ws.terminate();
      else ws.close(code, 'hv peer drop');
    }
  }

  /** Sends INVALID_SESSION; with `resumable` false the sessions are forgotten and clients must IDENTIFY. */
  invalidateSessions(resumable: boolean): void {
    for (const socket of this.sockets.values()) {
      if (!socket.session) continue;
      if (!resumable) {
        this.sessions.delete(socket.session.id);
        socket.session = undefined;
      }
      this.send(socket, { op: Op.InvalidSession, d: resumable });
    }
  }

  /** Sends RECONNECT (op 7): clients close and RESUME. */
  requestReconnect(): void {
    for (const socket of this.sockets.values()) this.send(socket, { op: Op.Reconnect, d: null });
  }

  close(): void {
    for (const { ws } of this.sockets.values()) ws.terminate();
    this.sockets.clear();
  }

  private onMessage(socket: Socket, text: string): void {
    let frame: { op?: unknown; d?: unknown };
    try {
      frame = JSON.parse(text) as { op?: unknown; d?: unknown };
    } catch {
      socket.ws.close(4002, 'Error while decoding payload.');
      return;
    }
    const op = typeof frame.op === 'number' ? frame.op : -1;
    this.frames.push({
      direction: 'in',
      connection: socket.id,
      op,
      t: null,
      s: null,
      d: frame.d,
      at: Date.now(),
    });
    const d = (frame.d ?? {}) as Record<string, unknown>;
    switch (op) {
      case Op.Heartbeat:
        this.send(socket, { op: Op.HeartbeatAck });
        return;
      case Op.Identify:
        this.identify(socket, d);
        return;
      case Op.Resume:
        this.resume(socket, d);
        return;
      case Op.PresenceUpdate:
      case Op.VoiceStateUpdate:
      case Op.RequestGuildMembers:
        if (!socket.session) socket.ws.close(4003, 'Not authenticated.');
        return;
      default:
        socket.ws.close(4001, 'Unknown opcode.');
    }
  }

  private identify(socket: Socket, d: Record<string, unknown>): void {
    if (socket.session) {
      socket.ws.close(4005, 'Already authenticated.');
      return;
    }
    if (d.token !== this.config.token) {
      socket.ws.close(4004, 'Authentication failed.');
      return;
    }
    this.identifies += 1;
    const session: Session = { id: randomBytes(16).toString('hex'), seq: 0, log: [], socket };
    this.sessions.set(session.id, session);
    socket.session = session;
    this.dispatchTo(session, 'READY', this.config.ready(session.id));
    for (const guild of this.config.guilds()) this.dispatchTo(session, 'GUILD_CREATE', guild);
  }

  private resume(socket: Socket, d: Record<string, unknown>): void {
    if (socket.session) {
      socket.ws.close(4005, 'Already authenticated.');
      return;
    }
    if (d.token !== this.config.token) {
      socket.ws.close(4004, 'Authentication failed.');
      return;
    }
    const session = this.sessions.get(String(d.session_id));
    const seq = typeof d.seq === 'number' ? d.seq : 0;
    if (!session || seq > session.seq) {
      this.send(socket, { op: Op.InvalidSession, d: false });
      return;
    }
    if (session.socket && session.socket !== socket) session.socket.ws.terminate();
    session.socket = socket;
    socket.session = session;
    this.resumes += 1;
    for (const entry of session.log) {
      if (entry.s > seq) this.send(socket, { op: Op.Dispatch, t: entry.t, s: entry.s, d: entry.d });
    }
    this.dispatchTo(session, 'RESUMED', { _trace: ['hv-discord-peer'] });
  }

  private onClose(socket: Socket, code: number): void {
    this.sockets.delete(socket.id);
    const session = socket.session;
    if (!session) return;
    if (session.socket === socket) session.socket = undefined;
    // A clean close (1000/1001) from the client ends the session, as on Discord.
    if (code === 1000 || code === 1001) this.sessions.delete(session.id);
  }

  private dispatchTo(session: Session, t: string, d: unknown): void {
    session.seq += 1;
    session.log.push({ s: session.seq, t, d });
    if (session.log.length > LOG_LIMIT) session.log.shift();
    if (session.socket) this.send(session.socket, { op: Op.Dispatch, t, s: session.seq, d });
  }

  private send(socket: Socket, frame: { op: number; d?: unknown; t?: string; s?: number }): void {
    const full = { op: frame.op, d: frame.d ?? null, s: frame.s ?? null, t: frame.t ?? null };
    this.frames.push({
      direction: 'out',
      connection: socket.id,
      op: full.op,
      t: full.t,
      s: full.s,
      d: full.d,
      at: Date.now(),
    });
    if (socket.ws.readyState === socket.ws.OPEN) socket.ws.send(JSON.stringify(full));
  }
}
