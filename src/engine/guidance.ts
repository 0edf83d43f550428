import { HV } from '../cli-name.js';
/** What went wrong in an upgrade test, as far as the admin's next step is concerned. */
export type FailureKind =
  | 'update'
  | 'evaluation'
  | 'build'
  | 'download'
  | 'hardware'
  | 'activation'
  | 'health'
  | 'interrupted'
  /** The activation got no confirmation from outside in time (apply.confirm): it was undone. */
  | 'not-confirmed'
  | 'internal';

const HARDWARE =
  /hardware-configuration|fileSystems\.|boot\.loader|boot\.initrd|grub|systemd-boot|no bootloader|root file ?system|kernel module|No such device|\bEFI\b|\/boot\b/i;
const DOWNLOAD =
  /unable to download|HTTP error|Could not resolve|couldn't resolve|Connection (refused|reset|timed out)|Failed to connect|SSL|cannot fetch|error: (cannot|unable to) (fetch|download)|No space left on device/i;
const BUILD =
  /builder for '.*' failed|build of '.*' failed|Cannot build '.*'|cannot build|failed with exit code|dependencies couldn't be built/i;

/** Classify a failed `nix build` by its output. */
export function classifyBuild(output: string): FailureKind {
  if (DOWNLOAD.test(output)) return 'download';
  if (BUILD.test(output)) return HARDWARE.test(output) ? 'hardware' : 'build';
  return HARDWARE.test(output) ? 'hardware' : 'evaluation';
}

/** Classify a failed activation: hardware/boot trouble (mounts, boot loader) or failing units. */
export function classifyActivation(output: string): FailureKind {
  return HARDWARE.test(output) ? 'hardware' : 'activation';
}

const DISK = `Check free space on /nix: \`df -h /nix\` (and \`df -i /nix\`); reclaim space with \`nix-collect-garbage --delete-older-than 30d\` (as root), then run \`${HV} upgrade-test\` again.`;

/** Troubleshooting text matched to the failure kind. */
export function guidanceFor(
  kind: FailureKind,
  ctx: { log: string; failedUnits?: string[]; checks?: string[] },
): string {
  switch (kind) {
    case 'update':
      return `Updating the tracked input failed. Check that the upstream is reachable (\`${HV} check-updates\`), DNS and proxy settings, then run \`${HV} upgrade-test\` again. Full output: ${ctx.log}.`;
    case 'evaluation':
      return `The configuration does not evaluate with the new nixpkgs. The usual cause is an option that was removed or renamed in this release: find the option named in the error, look it up in the NixOS release notes (https://nixos.org/manual/nixos/stable/release-notes) and adapt the configuration in flake.dir, or re-run the build with \`--show-trace\` for the location. Full output: ${ctx.log}.`;
    case 'build':
      return `A derivation failed to build; the build log is in ${ctx.log}. A full disk is a frequent cause. ${DISK} If the package fails upstream, wait for the next channel update.`;
    case 'download':
      return `Downloading sources or binaries failed. Check network access to the substituters and upstream (DNS, proxy, firewall). ${DISK} Full output: ${ctx.log}.`;
    case 'hardware':
      return `The failure points at hardware or boot configuration (file systems, boot loader, kernel modules). Compare hardware-configuration.nix with what \`nixos-generate-config --show-hardware-config\` reports for this machine, and adapt it. Full output: ${ctx.log}.`;
    case 'activation': {
      const units = ctx.failedUnits ?? [];
      const journal = units.length
        ? units.map((u) => `\`journalctl -b -u ${u}\``).join(', ')
        : '`systemctl --failed` and `journalctl -b -p err`';
      return `Activation failed${units.length ? ` with failed units: ${units.join(', ')}` : ''}. The previous system was re-activated. Inspect ${journal} to see why, fix the configuration or wait for an upstream fix, then run \`${HV} upgrade-test\` again.`;
    }
    case 'health':
      return `The new system activated but health checks failed (${(ctx.checks ?? []).join(', ')}). The previous system was re-activated. Look at the check output above and \`journalctl -b\` for the time of the test; run \`${HV} upgrade-test\` again once resolved.`;
    case 'interrupted':
      return `The test was interrupted (the process was killed or the machine lost power) before it finished. The previous system is active again; run \`${HV} upgrade-test\` again.`;
    case 'not-confirmed':
      return `No confirmation from outside the host arrived within apply.confirmWithinSec, so the previous system was re-activated: the new system may cut the host off (network interfaces, bridges, firewall, routes) or the evidence did not get through (chat reconnection, reachability probes, Keep or \`${HV} confirm\`). Compare the network configuration of both systems, check the probes from the host itself, then run \`${HV} upgrade-test\` again. Full output: ${ctx.log}.`;
    default:
      return `An unexpected error stopped the test. See ${ctx.log} and run \`${HV} upgrade-test\` again.`;
  }
}
