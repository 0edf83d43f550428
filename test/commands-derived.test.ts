import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hvCommandDefinition } from '../adapters/discord/slash.js';
import { channelTypes } from '../adapters/registry.js';
import { commandRegistry, findCommand, registerCommand } from '../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../src/bus/bus.js';
import { parseCommandArgs, validateArgs } from '../src/command-args.js';
import { commandOptions, usageLine } from '../src/command-options.js';
import { parseConfig } from '../src/config/load.js';
import { isHvError } from '../src/errors.js';
import type { Command } from '../src/ports/command.js';
import { createServices } from '../src/services.js';
import { messageText as discordText, startDiscord } from './adapters/discord/harness.js';
import {
  makeAdapter,
  messageText,
  sendSlash,
  slackChannelConfig,
  threadsSince,
  until,
} from './adapters/slack/harness.js';
import { DISCORD_IDS } from './peers/discord-peer.js';
import { SlackPeer } from './peers/slack-peer.js';

/**
 * A command that exists only in this test. Registering it is all it takes: `hv help`, Slack's help,
 * the Discord registration and the argument parsing all offer it, with no adapter change.
 */
const probe: Command<{ depth?: number; mode: 'fast' | 'slow'; dryRun: boolean }> = {
  name: 'probe-derived',
  summary: 'a command defined in a test',
  role: 'viewer',
  args: z.strictObject({
    depth: z.coerce.number().int().positive().optional().describe('how many levels to look into'),
    mode: z.enum(['fast', 'slow']).default('fast').describe('how thoroughly to look'),
    dryRun: z.boolean().default(false).describe('say what would be looked at, look at nothing'),
  }),
  async run(_ctx, args) {
    return {
      status: 'ok',
      exitCode: 0,
      message: `probed depth=${args.depth ?? '-'} mode=${args.mode} dry=${args.dryRun}`,
      data: {},
    };
  },
};

let unregister: () => void;
const dirs: string[] = [];
beforeAll(() => {
  unregister = registerCommand(probe);
});
afterAll(() => {
  unregister();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hv-derived-'));
  dirs.push(d);
  return d;
}

/** The help command's text as `actor.channel` sees it. */
async function helpAs(channel: string): Promise<string> {
  const help = findCommand('help');
  if (!help) throw new Error('no help command');
  const dir = tempDir();
  const config = parseConfig(
    { host: 'hv01', allowNonRoot: true, paths: { state: dir, log: dir } },
    channelTypes,
  );
  const r = await help.run(
    {
      config,
      actor: { channel, id: 'tester' },
      services: createServices(config, { channels: channelTypes }),
      progress: { step() {} },
      confirmed: false,
    },
    {},
  );
  return r.message;
}

describe('a command added in a test shows up in every front end', () => {
  it('the CLI parses its arguments from the schema alone, and its usage line is derived', () => {
    const parse = (words: string[]) => validateArgs(probe, parseCommandArgs(probe, words));
    expect(parse(['--depth', '3', '--dry-run'])).toEqual({ depth: 3, mode: 'fast', dryRun: true });
    expect(parse(['--mode=slow'])).toEqual({ mode: 'slow', dryRun: false });
    expect(usageLine(probe)).toBe('hv probe-derived [--depth N] [--mode fast|slow] [--dry-run] [--json]');
    const refusal = (words: string[]) => {
      try {
        parse(words);
      } catch (e) {
        return isHvError(e) && e.code === 'usage' ? e.message : `not a usage error: ${String(e)}`;
      }
      return 'accepted';
    };
    expect(refusal(['--deep', '3'])).toContain('allowed: --depth, --mode, --dry-run');
    expect(refusal(['--dry-run=yes'])).toContain('--dry-run takes no value');
    expect(refusal(['--depth', '0'])).toContain('depth:');
    expect(refusal(['--mode', 'medium'])).toContain('usage: hv probe-derived');
  });

  it('hv help lists it with its options and their descriptions', async () => {
    const text = await helpAs('cli');
    expect(text).toContain('probe-derived');
    expect(text).toContain('a command defined in a test');
    expect(text).toContain('hv probe-derived [--depth N] [--mode fast|slow] [--dry-run] [--json]');
    expect(text).toMatch(/--depth N\s+how many levels to look into/);
    expect(text).toMatch(/--dry-run\s+say what would be looked at/);
    // Chat lists no CLI-only command; the CLI does.
    expect(text).toContain('daemon');
    expect(await helpAs('slack')).not.toMatch(/^\s+daemon\s/m);
  });

  it('Slack: /hv help shows it with its options, and /hv probe-derived runs with them', async () => {
    const peer = await SlackPeer.start();
    const dir = tempDir();
    const team = peer.workspace.teamId;
    const user = peer.workspace.userId;
    const config = parseConfig(
      {
        host: 'hv01',
        allowNonRoot: true,
        paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
        notify: { channels: [slackChannelConfig(peer, dir)] },
        chatops: { roles: { [`slack:${team}:${user}`]: 'viewer' } },
      },
      channelTypes,
    );
    const bus: HostedCommandBus = createCommandBus(createServices(config, { channels: channelTypes }), {
      ...commandRegistry,
      pollMs: 50,
    });
    const { adapter } = makeAdapter(config);
    await adapter.start({ bus });
    try {
      const channel = peer.workspace.channelId;
      const shown = (since: number) => threadsSince(peer, channel, since).flat().map(messageText).join('\n');
      const help = sendSlash(peer, { id: user }, 'help');
      await until(() => shown(help.sentAt).includes('probe-derived'), 'the help in Slack');
      const text = shown(help.sentAt);
      expect(text).toContain('/hv probe-derived [--depth N] [--mode fast|slow] [--dry-run]');
      expect(text).toContain('how many levels to look into');
      const run = sendSlash(peer, { id: user }, 'probe-derived --depth 2 --mode slow');
      await until(() => shown(run.sentAt).includes('probed depth=2 mode=slow dry=false'), 'the result');
    } finally {
      await adapter.stop();
      await bus.stop();
      await peer.stop();
    }
  });

  it('Discord: the /hv registration offers it with typed options; a call reaches it as CLI words', async () => {
    const w = await startDiscord({
      noStart: true,
      config: { chatops: { roles: { [`discord:role:${DISCORD_IDS.adminRole}`]: 'viewer' } } },
    });
    const bus = createCommandBus(createServices(w.config, { channels: channelTypes }), {
      ...commandRegistry,
      pollMs: 50,
    });
    try {
      await w.adapter.start({ bus });
      const hv = w.peer.commandWrites[0]?.commands[0] as {
        options: { name: string; description: string; options?: Record<string, unknown>[] }[];
      };
      const sub = hv.options.find((o) => o.name === 'probe-derived');
      expect(sub?.description).toBe('a command defined in a test');
      expect(sub?.options).toEqual([
        {
          type: 4,
          name: 'depth',
          description: 'how many levels to look into',
          required: false,
          min_value: 1,
        },
        {
          type: 3,
          name: 'mode',
          description: 'how thoroughly to look',
          required: false,
          choices: [
            { name: 'fast', value: 'fast' },
            { name: 'slow', value: 'slow' },
          ],
        },
        {
          type: 5,
          name: 'dry-run',
          description: 'say what would be looked at, look at nothing',
          required: false,
        },
      ]);
      // The pure function gives the same payload from what the bus serves.
      expect(hvCommandDefinition('hv01', bus.commands())).toMatchObject({ options: hv.options });
      expect(commandOptions(probe).map((o) => o.name)).toEqual(['depth', 'mode', 'dry-run']);

      const sent = w.command(w.admin, 'probe-derived', ['--depth', '4', '--dry-run']);
      await until(
        () => w.related(sent.id).some((m) => discordText(m).includes('probed depth=4 mode=fast dry=true')),
        'the result in Discord',
      );
    } finally {
      await w.close();
      await bus.stop();
    }
  });
});
