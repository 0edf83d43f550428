import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { commandRegistry } from '../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../src/bus/bus.js';
import { parseConfig } from '../../src/config/load.js';
import { createServices } from '../../src/services.js';
import { chatRequest } from '../fixtures/chat.js';
import { RecordingReply } from './recording-reply.js';

const ADMIN = { channel: 'slack' as const, id: 'T1:UADMIN', display: 'ada' };

let dir: string;
let bus: HostedCommandBus | undefined;
afterEach(async () => {
  await bus?.stop();
  bus = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function setup(): HostedCommandBus {
  dir = mkdtempSync(join(tmpdir(), 'hv-bus-damaged-'));
  const raw = {
    host: 'hv01',
    allowNonRoot: true,
    paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
    flake: { dir: join(dir, 'flake') },
    notify: { channels: [] },
    chatops: { roles: { 'slack:T1:UADMIN': 'admin' } },
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const config = parseConfig(raw, channelTypes);
  const services = createServices(config, { channels: channelTypes });
  bus = createCommandBus(services, { ...commandRegistry, configPath, pollMs: 50 });
  return bus;
}

describe('command bus: a damaged pending confirmation', () => {
  it('a click on it is refused naming the file, and nothing runs; cancel says the same', async () => {
    const b = setup();
    const reply = new RecordingReply();
    expect((await b.submit(chatRequest(ADMIN, 'system-upgrade'), reply)).kind).toBe('needs-confirmation');
    const token = reply.prompts[0]?.token as string;
    const confirmDir = join(b.store.dir, 'confirm');
    const [name] = readdirSync(confirmDir);
    const file = join(confirmDir, name as string);
    writeFileSync(file, '{"token": "x", "needed": ');

    const click = new RecordingReply();
    expect((await b.confirm(token, ADMIN, click)).kind).toBe('refused');
    expect(click.refusals[0]).toContain(file);
    expect(click.refusals[0]).toMatch(/pending confirmation .* is not valid JSON/);
    expect(b.store.unreported()).toEqual([]);

    const cancel = new RecordingReply();
    await b.cancel(token, ADMIN, cancel);
    expect(cancel.refusals[0]).toContain(file);
  });
});
