import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../adapters/registry.js';
import { commandRegistry } from '../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../src/bus/bus.js';
import { parseConfig } from '../src/config/load.js';
import { openWindow } from '../src/engine/confirm-window.js';
import { selfIdentity } from '../src/process-identity.js';
import { createServices } from '../src/services.js';
import { statePaths } from '../src/state.js';
import { RecordingReply } from './bus/recording-reply.js';
import { auditRecords, chatRequest } from './fixtures/chat.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
let bus: HostedCommandBus | undefined;
afterEach(async () => {
  await bus?.stop();
  bus = undefined;
  world?.cleanup();
  world = undefined;
});

const ADMIN = { channel: 'slack' as const, id: 'T1:UADMIN', display: 'ada' };
const REQUESTER = { channel: 'slack' as const, id: 'T1:UOP', display: 'olga' };
const OTHER = { channel: 'slack' as const, id: 'T1:UOTHER' };

describe('hv confirm from chat', () => {
  it('the requester or an admin keeps the activation (human evidence recorded, audited); another operator is refused', async () => {
    world = new World({
      branches: ['nixos-24.05'],
      config: {
        apply: { confirm: ['human'], confirmWithinSec: 60 },
        chatops: {
          roles: { 'slack:T1:UADMIN': 'admin', 'slack:T1:UOP': 'operator', 'slack:T1:UOTHER': 'operator' },
        },
      },
    });
    const w = world;
    const config = parseConfig(w.config, channelTypes);
    const paths = statePaths(config);
    // A window this (live) process owns, as a waiting upgrade-test started by REQUESTER would.
    const opened = new Date();
    const window = {
      ...selfIdentity(),
      id: 'w1',
      operation: 'upgrade-test' as const,
      requestId: 'req-up',
      requester: 'slack:T1:UOP',
      openedAt: opened.toISOString(),
      deadline: new Date(opened.getTime() + 60_000).toISOString(),
      wants: ['human' as const],
      chatChannels: [],
      activated: '/nix/store/new',
      previousSystem: '/nix/store/old',
    };
    openWindow(paths, window);
    bus = createCommandBus(createServices(config, { channels: channelTypes }), {
      ...commandRegistry,
      configPath: w.configPath,
      pollMs: 100,
    });
    const evidence = () => readdirSync(join(paths.dir, 'confirm-evidence'));

    const other = new RecordingReply();
    await bus.submit(chatRequest(OTHER, 'confirm'), other);
    await bus.idle();
    expect(other.results[0]?.exitCode).toBe(3);
    expect(other.results[0]?.message).toMatch(
      /only the requester of the upgrade-test \(slack:T1:UOP\) or an admin/,
    );
    expect(evidence()).toEqual([]);

    const mine = new RecordingReply();
    await bus.submit(chatRequest(REQUESTER, 'confirm'), mine);
    await bus.idle();
    expect(mine.results[0]?.exitCode, mine.results[0]?.message).toBe(0);
    expect(evidence()).toEqual(['w1.human.json']);

    const admin = new RecordingReply();
    await bus.submit(chatRequest(ADMIN, 'confirm'), admin);
    await bus.idle();
    expect(admin.results[0]?.exitCode, admin.results[0]?.message).toBe(0);
    expect(
      auditRecords(w.paths.audit).filter((a) => a.operation === 'confirm' && a.result === 'ok'),
    ).toHaveLength(2);
    expect(existsSync(join(paths.dir, 'confirm-window.json'))).toBe(true);
  });
});
