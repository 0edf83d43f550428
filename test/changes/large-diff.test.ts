import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../fixtures/world.js';
import { hvAsync } from '../notify/smtp.js';
import { type ChatWorld, discordText, slackText, startChatWorld } from './chat-world.js';
import { discordLimitErrors, SUBJECT_MAX, slackLimitErrors } from './limits.js';

/**
 * A very large upgrade on a real Nix (250 packages with long names change, plus QEMU, libvirt, the
 * kernel and two watched packages): every notification and prompt still fits its platform, and
 * the highlights are never the part that is cut.
 */
const N = 250;
const pkg = (i: number, v: string) => `package-number${i}-with-a-rather-long-name-${v}`;
const HIGHLIGHTS =
  'kernel 6.6.1 → 6.6.2, libvirt 10.5.0 → 10.6.0, QEMU 9.0.1 → 9.1.0, openvswitch added (3.3.0), zfs-kernel added (2.2.4-6.6.2)';
const COUNTS = `${N + 4} changed, 2 added`;

let world: World;
let chat: ChatWorld;

beforeAll(async () => {
  const many = (v: string) => Array.from({ length: N }, (_, i) => pkg(i, v));
  world = new World({
    branches: ['nixos-24.05'],
    initial: { packages: ['qemu-9.0.1', 'libvirt-10.5.0', ...many('1.0')] },
  });
  (world.config.test as Record<string, unknown>).watch = ['zfs', 'openvswitch'];
  chat = await startChatWorld(world);
  world.upstream.advance('nixos-24.05', {
    packages: ['qemu-9.1.0', 'libvirt-10.6.0', 'zfs-kernel-2.2.4-6.6.2', 'openvswitch-3.3.0', ...many('2.0')],
    kernel: '6.6.2',
  });
  const t = await hvAsync(world, ['upgrade-test'], { timeoutMs: 240_000 });
  if (t.code !== 0) throw new Error(`upgrade-test failed: ${t.stderr}${t.stdout}`);
}, 300_000);

afterAll(async () => {
  await chat?.close();
  world?.cleanup();
});

describe('a very large diff fits every platform, highlights first', () => {
  it('the result files hold every change; test.passed fits Slack, Discord, email and wall with the highlights', async () => {
    const stored = JSON.parse(world.read(world.paths.testJson));
    expect(stored.changes.changed).toHaveLength(N + 4);
    const text = world.read(world.paths.testText);
    for (let i = 0; i < N; i++) expect(text).toContain(`    ${pkg(i, '').slice(0, -1)} 1.0 → 2.0\n`);

    const post = await chat.slackNotice('Upgrade test PASSED');
    expect(slackLimitErrors(post)).toEqual([]);
    expect(slackText(post)).toContain(`*Changes*\n${HIGHLIGHTS}; ${COUNTS}`);
    expect(post.text).toContain(HIGHLIGHTS);

    const embed = await chat.discordNotice('Upgrade test PASSED');
    expect(discordLimitErrors(embed.wire)).toEqual([]);
    expect(discordText(embed)).toContain(`**Changes:** ${HIGHLIGHTS}; ${COUNTS}`);

    const m = await chat.mailAbout('PASSED');
    expect((m.subject ?? '').length).toBeLessThanOrEqual(SUBJECT_MAX);
    expect(m.subject).toContain(`Changes: ${HIGHLIGHTS}; ${COUNTS}`);
    // The email body has the full list, every line of it.
    for (let i = 0; i < N; i++) expect(m.text).toContain(`  ${pkg(i, '').slice(0, -1)} 1.0 → 2.0\n`);

    const wall = world.wallMessages().find((x) => x.includes('Upgrade test PASSED'));
    expect(wall).toContain(HIGHLIGHTS);
    expect(wall?.length).toBeLessThan(1000);
  });

  it('the system-upgrade prompts on Slack and Discord fit and name the highlights', async () => {
    const prompt = await chat.slackPrompt('system-upgrade');
    expect(slackLimitErrors(prompt)).toEqual([]);
    expect(slackText(prompt)).toContain(`Changes: ${HIGHLIGHTS}; ${COUNTS}`);

    const reply = await chat.discordPrompt('system-upgrade');
    expect(discordLimitErrors(reply.wire)).toEqual([]);
    expect(discordText(reply)).toContain(`Changes: ${HIGHLIGHTS}; ${COUNTS}`);
  });
});
