import { execFileSync } from 'node:child_process';

/** Tests run the built CLI (as admins do): build once before any test. */
export default function setup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
