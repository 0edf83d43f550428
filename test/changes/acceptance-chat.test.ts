import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, click } from '../adapters/slack/harness.js';
import type { World } from '../fixtures/world.js';
import { hvAsync } from '../notify/smtp.js';
import { acceptanceWorld, advanceAcceptance, SUMMARY } from './acceptance.js';
import { type ChatWorld, discordText, SLACK_ADMIN, slackText, startChatWorld } from './chat-world.js';
import { discordLimitErrors, SUBJECT_MAX, slackLimitErrors } from './limits.js';

/**
 * Issue 15, acceptance 2 on a real Nix: the changes of acceptance 1 in the test.passed notification
 * of every channel (Slack, Discord, email, wall) and in the chat confirmation prompt of
 * system-upgrade (Slack and Discord), each within its platform's limits.
 */
let world: World;
let chat: ChatWorld;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

beforeAll(async () => {
  world = acceptanceWorld();
  chat = await startChatWorld(world);
  advanceAcceptance(world);
  // The CLI runs the test; its notifications go straight to every channel.
  const t = await hvAsync(world, ['upgrade-test']);
  if (t.code !== 0) throw new Error(`upgrade-test failed: ${t.stderr}${t.stdout}`);
}, 180_000);

afterAll(async () => {
  await chat?.close();
  world?.cleanup();
});

describe('what an upgrade changes, in chat and every notification (issue 15, acceptance 2)', () => {
  it('test.passed: the summary in the Slack, Discord and wall title and the email subject; the full list in the email body', async () => {
    // Slack: the title (header and fallback text) and a Changes fact.
    const post = await chat.slackNotice('Upgrade test PASSED');
    expect(post.text).toContain(`Changes: ${SUMMARY}`);
    expect(slackText(post)).toContain(`*Changes*\n${SUMMARY}; closure +16 B`);
    expect(slackLimitErrors(post)).toEqual([]);

    // Discord: the embed title and the Changes fact.
    const embed = await chat.discordNotice('Upgrade test PASSED');
    expect(discordText(embed)).toContain(`**Changes:** ${SUMMARY}; closure +16 B`);
    expect(discordLimitErrors(embed.wire)).toEqual([]);

    // Email: the subject has the short form, the body (text and HTML) the full list.
    const m = await chat.mailAbout('PASSED');
    expect(m.subject).toContain(`Changes: ${SUMMARY}`);
    expect((m.subject ?? '').length).toBeLessThanOrEqual(SUBJECT_MAX);
    const body = m.text ?? '';
    expect(body).toMatch(new RegExp(`\\nChanges: +${esc(SUMMARY)}; closure \\+16 B\\n`));
    for (const line of [
      'Highlights: kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0',
      'Kernel: 6.6.1 → 6.6.2',
      'Changed (3):\n  initrd-linux 6.6.1 → 6.6.2\n  linux 6.6.1 → 6.6.2\n  qemu 9.0.1 → 9.1.0',
      'Added (1):\n  swtpm 0.9.0',
      'Removed (1):\n  spice 0.15.1',
      'Rebuilt at the same version: 1',
    ])
      expect(body).toContain(line);
    expect(m.html).toContain('qemu 9.0.1 → 9.1.0');
    expect(m.html).toContain('swtpm 0.9.0');

    // Wall: one short broadcast with the summary.
    const wall = world.wallMessages().find((x) => x.includes('Upgrade test PASSED'));
    expect(wall).toContain(`Changes: ${SUMMARY}`);
    expect(wall?.trim().split('\n').length).toBeLessThanOrEqual(3);
  });

  it('the system-upgrade confirmation prompt on Slack and Discord says the changes, within limits', async () => {
    const prompt = await chat.slackPrompt('system-upgrade');
    expect(slackText(prompt)).toContain(`Changes: ${SUMMARY}; closure +16 B`);
    expect(slackText(prompt)).toContain('Will change: generation 1 → new generation 2');
    expect(slackLimitErrors(prompt)).toEqual([]);

    const reply = await chat.discordPrompt('system-upgrade');
    expect(discordText(reply)).toContain(`Changes: ${SUMMARY}; closure +16 B`);
    expect(discordLimitErrors(reply.wire)).toEqual([]);
    // Nothing ran without a click.
    expect(world.activations().map((a) => a.action)).toEqual(['test']);
  });

  it('confirmed in Slack: upgrade.applied carries the changes on every channel; the rollback prompt says what going back changes', async () => {
    const prompt = await chat.slackPrompt('system-upgrade');
    const confirm = buttonsOf(prompt).find((b) => b.label.includes('Confirm'));
    if (!confirm) throw new Error('no Confirm button');
    await click(chat.slack, confirm, SLACK_ADMIN);
    const post = await chat.slackNotice('System upgrade applied', 90_000);
    expect(post.text).toContain(`Changes: ${SUMMARY}`);
    expect(slackLimitErrors(post)).toEqual([]);
    const embed = await chat.discordNotice('System upgrade applied', 30_000);
    expect(discordText(embed)).toContain(`**Changes:** ${SUMMARY}; closure +16 B`);
    expect(discordLimitErrors(embed.wire)).toEqual([]);
    const m = await chat.mailAbout('System upgrade applied', 30_000);
    expect(m.subject).toContain(`Changes: ${SUMMARY}`);
    expect(m.text).toContain(
      'Changed (3):\n  initrd-linux 6.6.1 → 6.6.2\n  linux 6.6.1 → 6.6.2\n  qemu 9.0.1 → 9.1.0',
    );
    expect(m.text).toContain('Added (1):\n  swtpm 0.9.0');
    expect(world.activations().map((a) => a.action)).toEqual(['test', 'switch']);

    // Going back: from the running system (generation 2) to generation 1, computed for the prompt.
    const back =
      'Changes: kernel 6.6.2 → 6.6.1, QEMU 9.1.0 → 9.0.1; 3 changed, 1 added, 1 removed, 1 rebuilt; closure -16 B';
    const rollback = await chat.slackPrompt('rollback');
    expect(slackText(rollback)).toContain(back);
    expect(slackLimitErrors(rollback)).toEqual([]);
    const reply = await chat.discordPrompt('rollback');
    expect(discordText(reply)).toContain(back);
    expect(discordLimitErrors(reply.wire)).toEqual([]);
  }, 180_000);
});
