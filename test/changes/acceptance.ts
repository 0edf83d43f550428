import { World } from '../fixtures/world.js';

/**
 * Issue 15's acceptance 1 as a sandbox host: the running system has qemu 9.0.1, libvirt 10.5.0 and
 * spice 0.15.1 on kernel 6.6.1; the next upstream revision moves qemu to 9.1.0, adds swtpm 0.9.0,
 * drops spice, rebuilds libvirt at the same version and brings kernel 6.6.2.
 */

/** The host of issue 15's acceptance 1: qemu, libvirt and spice in the running system. */
export function acceptanceWorld(config: Record<string, unknown> = {}): World {
  return new World({
    branches: ['nixos-24.05'],
    initial: { packages: ['qemu-9.0.1', 'libvirt-10.5.0', 'spice-0.15.1'] },
    config,
  });
}

/** qemu 9.0.1 → 9.1.0, swtpm added, spice dropped, libvirt rebuilt, kernel 6.6.1 → 6.6.2. */
export function advanceAcceptance(w: World, extra: string[] = []): void {
  w.upstream.advance('nixos-24.05', {
    packages: ['qemu-9.1.0', 'libvirt-10.5.0', 'swtpm-0.9.0', ...extra],
    rebuild: ['libvirt-10.5.0'],
    kernel: '6.6.2',
  });
}

/** The short form every subject, prompt and status line carries for acceptance 1. */
export const SUMMARY = 'kernel 6.6.1 → 6.6.2, QEMU 9.0.1 → 9.1.0; 3 changed, 1 added, 1 removed, 1 rebuilt';
