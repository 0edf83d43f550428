/**
 * The self-contained demo: a real Nix store, a local git upstream standing in for nixpkgs, a host
 * flake locked against it, and every notification channel pointed at a loopback peer (SMTP, Slack,
 * Discord) or a file (motd, wall). Runs the full cycle with the shipped CLI — check, notify, test,
 * apply, rollback — and shows what each channel received. Changes nothing outside its temp dir.
 *
 * Run: npm run demo   (needs Nix: `bash .ci/setup` installs it on Debian)
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { World } from '../test/fixtures/world.js';
import { DiscordPeer } from '../test/peers/discord-peer.js';
import { SlackPeer } from '../test/peers/slack-peer.js';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const indent = (s: string) => s.replace(/\n$/, '').replace(/^/gm, '    ');

function say(title: string): void {
  console.log(`\n${bold(`== ${title}`)}`);
}

interface Mail {
  subject: string;
  text: string;
}

async function startSmtp(): Promise<{ port: number; mails: Mail[]; close: () => Promise<void> }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, done) {
      simpleParser(stream)
        .then((m) => {
          mails.push({ subject: m.subject ?? '', text: m.text ?? '' });
          done();
        })
        .catch(done);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  return { port, mails, close: () => new Promise((r) => server.close(() => r())) };
}

async function main(): Promise<void> {
  const nix = spawnSync('nix', ['--version'], { encoding: 'utf8' });
  if (nix.status !== 0) {
    console.error('The demo needs Nix with flakes. On Debian, as root: bash .ci/setup');
    process.exit(1);
  }
  say(`Setting up a sandbox host on a real Nix (${nix.stdout.trim()})`);
  const smtp = await startSmtp();
  const slack = await SlackPeer.start();
  const discord = await DiscordPeer.start();
  // The sandbox systems carry versioned packages, so that "what changes" has something to say.
  const world = new World({
    branches: ['nixos-24.05', 'nixos-24.11', 'nixos-unstable'],
    initial: {
      packages: ['qemu-9.0.1', 'libvirt-10.5.0', 'spice-0.15.1', 'OVMF-202402-fd', 'systemd-255.6'],
    },
  });
  const secret = (name: string, value: string) => {
    const p = join(world.root, `${name}.secret`);
    writeFileSync(p, value, { mode: 0o600 });
    return p;
  };
  world.config.notify = {
    channels: [
      { type: 'motd' },
      (world.config.notify as { channels: unknown[] }).channels[1],
      {
        type: 'email',
        name: 'ops-mail',
        from: 'hv@hv01.example.org',
        to: ['ops@example.org'],
        smtp: { host: '127.0.0.1', port: smtp.port },
      },
      {
        type: 'slack',
        name: 'slack',
        mode: 'socket',
        botTokenFile: secret('slack-bot', 'xoxb-hv-test'),
        appTokenFile: secret('slack-app', 'xapp-1-hv-test'),
        channel: 'C0123OPS',
        apiUrl: slack.apiUrl,
      },
      {
        type: 'discord',
        name: 'discord',
        tokenFile: secret('discord', discord.token),
        applicationId: discord.applicationId,
        guildId: discord.guild.id,
        channelId: discord.channelId,
        apiUrl: discord.apiUrl,
      },
    ],
    timeoutSec: 10,
  };
  world.writeConfig();
  console.log(`  sandbox:   ${world.root}`);
  console.log(`  upstream:  ${world.upstream.dir} (branches nixos-24.05, nixos-24.11, nixos-unstable)`);
  console.log(`  host flake ${world.flakeDir} tracks nixos-24.05; system generation 1 installed`);
  console.log(
    '  channels:  motd file, wall (to a file), email (SMTP on loopback), Slack and Discord (loopback peers)',
  );

  const seen = { wall: 0, mail: 0, slack: 0, discord: 0 };
  const showChannels = () => {
    const motd = world.tryRead(world.paths.motd);
    console.log(`  motd:    ${motd ? `\n${indent(motd)}` : '(no notice)'}`);
    for (const m of world.wallMessages().slice(seen.wall))
      console.log(`  wall:    ${m.trim().split('\n').join(' | ')}`);
    for (const m of smtp.mails.slice(seen.mail)) console.log(`  email:   "${m.subject}"`);
    for (const m of slack.messages.slice(seen.slack))
      console.log(`  slack:   ${m.channel}: ${(m.text ?? '').split('\n')[0]}`);
    const dmsgs = discord.messagesIn(discord.channelId);
    for (const m of dmsgs.slice(seen.discord)) {
      const embeds = (m.wire.embeds as { title?: string }[] | undefined) ?? [];
      console.log(`  discord: ${embeds[0]?.title ?? String(m.wire.content ?? '').split('\n')[0]}`);
    }
    seen.wall = world.wallMessages().length;
    seen.mail = smtp.mails.length;
    seen.slack = slack.messages.length;
    seen.discord = dmsgs.length;
  };
  const hv = async (args: string[]) => {
    console.log(`\n  $ hv ${args.join(' ')}`);
    const r = await world.hvAsync(args);
    console.log(
      indent(
        `${r.stdout}${r.stderr
          .split('\n')
          .filter((l) => !l.startsWith('hv: ['))
          .join('\n')}`,
      ),
    );
    console.log(`  (exit ${r.code})`);
    return r;
  };

  try {
    say('1. Status of the host');
    await hv(['status']);

    say('2. Upstream nixos-24.05 moves on; the check notices and tells everyone once');
    // QEMU and the kernel move, swtpm comes, spice goes, libvirt is rebuilt at the same version.
    world.upstream.advance('nixos-24.05', {
      kernel: '6.6.2',
      packages: ['qemu-9.1.0', 'libvirt-10.5.0', 'swtpm-0.9.0', 'OVMF-202402-fd', 'systemd-255.6'],
      rebuild: ['libvirt-10.5.0'],
    });
    await hv(['check-updates']);
    showChannels();
    await hv(['check-updates']);
    console.log('  (second check: same update, no repeated broadcast)');
    showChannels();

    say('3. Test the upgrade live (switch-to-configuration test), health-checked, not persisted');
    await hv(['upgrade-test']);
    showChannels();
    console.log(
      `  activations so far: ${world
        .activations()
        .map((a) => `${a.action} ${a.path.slice(11, 23)}…`)
        .join(', ')}`,
    );
    await hv(['diff']);

    say('4. Apply exactly what was tested');
    await hv(['system-upgrade', '--yes']);
    showChannels();
    await hv(['status']);

    say('5. Roll back to the generation recorded before the upgrade');
    await hv(['rollback', '--yes']);
    showChannels();

    say('6. The audit trail is intact');
    await hv(['audit', '--verify']);

    say('Summary: what each channel received');
    console.log(`  wall:    ${world.wallMessages().length} broadcasts`);
    console.log(`  email:   ${smtp.mails.map((m) => `"${m.subject}"`).join(', ') || 'none'}`);
    console.log(`  slack:   ${slack.messages.length} messages`);
    console.log(`  discord: ${discord.messagesIn(discord.channelId).length} messages`);
  } finally {
    await smtp.close();
    await slack.stop();
    await discord.stop();
    if (!process.env.HV_KEEP_WORLD) world.cleanup();
    else console.log(`\n  (kept ${world.root})`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
