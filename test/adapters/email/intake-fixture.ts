import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { channelTypes } from '../../../adapters/registry.js';
import { commandRegistry } from '../../../commands/index.js';
import type { AuditRecord } from '../../../src/audit.js';
import { createCommandBus, type HostedCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import type { ChannelAdapter } from '../../../src/ports/channel.js';
import { createServices } from '../../../src/services.js';
import { auditRecords, sandboxConfig } from '../../fixtures/chat.js';
import { emailChannel, type MailSink } from '../../notify/smtp.js';
import type { DnsServer } from './dns-server.js';

export const HV_ADDRESS = 'hv@hv01.example.org';
export const ROLES = {
  'email:alice@example.org': 'admin',
  'email:bob@example.org': 'admin',
  'email:olga@example.org': 'operator',
};

/** The email channel of the tests' config: replies to the SMTP sink, keys from the DNS server. */
export function intakeChannel(sink: MailSink, dns: DnsServer, intake: Record<string, unknown> = {}) {
  return emailChannel('mail', sink.port, {
    intake: { address: HV_ADDRESS, dnsServers: [dns.address], ...intake },
  });
}

/** Write a sandbox host's config with the intake channel; returns its path and parsed form. */
export function writeConfig(
  dir: string,
  sink: MailSink,
  dns: DnsServer,
  opts: { chatops?: Record<string, unknown>; intake?: Record<string, unknown> } = {},
) {
  const raw = sandboxConfig(dir, {
    notify: { channels: [intakeChannel(sink, dns, opts.intake)] },
    chatops: { roles: ROLES, stateDir: join(dir, 'chat'), ...opts.chatops },
  });
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  return { configPath, config: parseConfig(raw, channelTypes) };
}

/** A running "chat process" for the tests: the real bus and the email channel's intake adapter. */
export interface Hosted {
  bus: HostedCommandBus;
  adapter: ChannelAdapter;
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  stop(): Promise<void>;
}

export async function host(
  dir: string,
  sink: MailSink,
  dns: DnsServer,
  now: () => Date,
  opts: { chatops?: Record<string, unknown>; intake?: Record<string, unknown> } = {},
): Promise<Hosted> {
  const { configPath, config } = writeConfig(dir, sink, dns, opts);
  const logs: Hosted['logs'] = [];
  const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
    logs.push({ level, msg, fields });
  };
  const services = createServices(config, { channels: channelTypes, now, log });
  const bus = createCommandBus(services, { ...commandRegistry, configPath, pollMs: 50 });
  const settings = config.notify.channels[0];
  const type = settings && channelTypes.get(settings.type);
  if (!settings || !type) throw new Error('no email channel');
  const adapter = await type.open(settings, {
    config,
    runner: services.runner,
    now,
    readSecret: services.readSecret,
    log,
  });
  await adapter.start?.({ bus });
  return {
    bus,
    adapter,
    logs,
    async stop() {
      await adapter.stop?.();
      await bus.idle();
      await bus.stop();
    },
  };
}

export const spoolOf = (dir: string) => join(dir, 'chat', 'mail-spool');

/** Wait until the spool is empty (every message handled) and the bus follows no operation. */
export async function settled(dir: string, bus: HostedCommandBus, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const left = () => {
    try {
      return readdirSync(spoolOf(dir)).filter((n) => n.endsWith('.eml')).length;
    } catch {
      return 0;
    }
  };
  while (left() > 0) {
    if (Date.now() > until) throw new Error(`${left()} message(s) still in the spool`);
    await new Promise((r) => setTimeout(r, 25));
  }
  await bus.idle();
}

export const audit = (dir: string): AuditRecord[] => auditRecords(join(dir, 'state', 'audit.jsonl'));
