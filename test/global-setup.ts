import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const vendor = join(dirname(fileURLToPath(import.meta.url)), 'nix', 'vendor');

/**
 * Tests run the built CLI (as admins do): build once before any test. nixpkgs' lib (the real
 * module system the NixOS module is evaluated with) is kept as its unmodified upstream archive and
 * unpacked here.
 */
export default function setup(): void {
  if (!existsSync(join(vendor, 'nixpkgs-lib', 'lib', 'default.nix')))
    execFileSync('tar', ['-xzf', 'nixpkgs-lib.tar.gz'], { cwd: vendor, stdio: 'inherit' });
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
