#!/usr/bin/env node
/**
 * The chat process (`hv-chat.mjs --socket PATH`): the composition root of the unprivileged side.
 * Started by `hv daemon` as the chat user, or by the NixOS module's hv-chat.service. It connects to
 * the engine's socket, receives its config (and, unless systemd supplies them, its secrets), and
 * hosts the network-facing adapters. When the link to the engine goes, it exits; its supervisor
 * starts it again.
 */
import { connect } from 'node:net';
import { channelTypes } from '../../adapters/registry.js';
import { commandRegistry } from '../../commands/index.js';
import { errorMessage } from '../errors.js';
import { ExecaRunner, HV_UMASK } from '../proc.js';
import { ChatClient } from './chat-client.js';
import { socketLink } from './transport.js';

process.umask(HV_UMASK);

const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
  const rest = fields
    ? Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => ` ${k}=${typeof v === 'string' && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`)
        .join('')
    : '';
  process.stderr.write(`${level} ${msg}${rest}\n`);
};

function socketArg(argv: string[]): string {
  const i = argv.indexOf('--socket');
  const path = i >= 0 ? argv[i + 1] : undefined;
  if (!path?.startsWith('/')) {
    process.stderr.write('usage: hv-chat --socket /absolute/path/to/chat.sock\n');
    process.exit(2);
  }
  return path;
}

const path = socketArg(process.argv.slice(2));
const socket = connect(path);
socket.once('error', (e) => {
  log('error', 'cannot reach the engine socket', { path, error: e.message });
  process.exit(75);
});
await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
const link = socketLink(socket);
const client = new ChatClient({
  link,
  channels: channelTypes,
  commands: commandRegistry,
  runner: new ExecaRunner(),
  log,
  credentialsDir: process.env.CREDENTIALS_DIRECTORY,
});
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code), 3000).unref();
  await client.stop().catch(() => undefined);
  process.exit(code);
};
link.onClose((reason) => {
  log('warn', 'engine link closed; exiting', { reason });
  void stop(75);
});
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
try {
  await client.start();
  log('info', 'chat process ready', { pid: process.pid, uid: process.getuid?.() });
} catch (e) {
  log('error', 'chat process failed to start', { error: errorMessage(e) });
  await stop(75);
}
