import { describe, expect, it } from 'vitest';
import { releaseCommand, releaseOfArg, rewriteRelease } from '../src/engine/release-upgrade.js';
import { HvError } from '../src/errors.js';

const R2411 = { year: 24, month: 11 };
const FILE = '/etc/hypervisor/flake.nix';

/** Rewrite `text` to 24.11 and return the new text, or the HvError thrown. */
function move(text: string, input = 'nixpkgs', to = R2411): string | HvError {
  try {
    return rewriteRelease(text, FILE, input, to).text;
  } catch (e) {
    if (e instanceof HvError) return e;
    throw e;
  }
}

const flake = (inputs: string, rest = '') => `{
  description = "host";
${inputs}
  outputs = { self, nixpkgs, ... }@inputs: let
    lib = nixpkgs.lib; x = "github:NixOS/nixpkgs/nixos-23.11";
  in with lib; {
    nixosConfigurations.hv = lib.nixosSystem { modules = [ ./configuration.nix { system.stateVersion = "24.05"; } ]; };
  };${rest}
}
`;

describe('rewriting the tracked input of flake.nix to another release', () => {
  it.each([
    ['inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";', 'github:NixOS/nixpkgs/nixos-24.11'],
    ['inputs = { nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05"; };', 'github:NixOS/nixpkgs/nixos-24.11'],
    [
      'inputs = {\n    nixpkgs = { url = "gitlab:foo/nixpkgs/nixos-24.05?dir=x"; };\n    other.url = "github:a/b";\n  };',
      'gitlab:foo/nixpkgs/nixos-24.11?dir=x',
    ],
    [
      'inputs.nixpkgs.url = "git+https://example.org/nixpkgs.git?ref=nixos-24.05&shallow=1";',
      'git+https://example.org/nixpkgs.git?ref=nixos-24.11&shallow=1',
    ],
    [
      'inputs.nixpkgs.url = "git+file:///srv/nixpkgs?ref=nixos-24.05";',
      'git+file:///srv/nixpkgs?ref=nixos-24.11',
    ],
    ['inputs.nixpkgs.url = "github:NixOS/nixpkgs?ref=nixos-24.05";', 'github:NixOS/nixpkgs?ref=nixos-24.11'],
    [
      'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05-small";',
      'github:NixOS/nixpkgs/nixos-24.11-small',
    ],
    ['inputs.nixpkgs.url = "nixpkgs/nixos-24.05";', 'nixpkgs/nixos-24.11'],
    [
      'inputs.nixpkgs = { type = "github"; owner = "NixOS"; repo = "nixpkgs"; ref = \'x\'; };'.replace(
        "'x'",
        '"nixos-24.05"',
      ),
      'ref = "nixos-24.11"',
    ],
  ])('%s', (inputs, expected) => {
    const text = flake(`  ${inputs}`);
    const out = move(text);
    expect(typeof out, String(out)).toBe('string');
    expect(out).toContain(expected);
    // Only that one string changed: the rest, stateVersion and the other 23.11 string included, is byte for byte.
    const changed = (out as string).length - text.length;
    expect(changed).toBe(0);
    const diff = [...text].map((c, i) => (c === (out as string)[i] ? '' : i)).filter((x) => x !== '');
    expect(diff.length).toBeGreaterThan(0);
    expect(diff.length).toBeLessThanOrEqual(4);
    expect(out).toContain('system.stateVersion = "24.05";');
    expect(out).toContain('"github:NixOS/nixpkgs/nixos-23.11"');
  });

  it('other inputs following nixpkgs and comments mentioning the url are left alone', () => {
    const text = flake(
      `  # was: inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.home-manager = { url = "github:nix-community/home-manager/release-24.05"; inputs.nixpkgs.follows = "nixpkgs"; };`,
    );
    const out = move(text) as string;
    expect(out).toContain('# was: inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";');
    expect(out).toContain('inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";');
    expect(out).toContain('home-manager/release-24.05');
  });

  it('the same url for two inputs is ambiguous: refused (exit 3) naming the lines and the file', () => {
    const e = move(
      flake(`  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.nixpkgs-vm.url = "github:NixOS/nixpkgs/nixos-24.05";`),
    ) as HvError;
    expect(e).toBeInstanceOf(HvError);
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(/also appears on line 4 \(input nixpkgs-vm\)/);
    expect(e.message).toContain(`Edit ${FILE} by hand`);
  });

  it.each([
    ['a computed url', `inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-${'$'}{"24.05"}";`, /computed/],
    ['an inputs set from elsewhere', 'inputs = import ./inputs.nix;', /computed/],
    ['no url (flake registry)', 'inputs.other.url = "github:a/b";', /sets no url for input "nixpkgs"/],
    [
      'a branch that is no release',
      'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";',
      /not a release branch/,
    ],
    ['no branch at all', 'inputs.nixpkgs.url = "github:NixOS/nixpkgs";', /names no branch/],
  ])('%s is refused with exit 3, nothing guessed', (_what, inputs, why) => {
    const e = move(flake(`  ${inputs}`)) as HvError;
    expect(e).toBeInstanceOf(HvError);
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(why);
    expect(e.message).toContain('nixos-24.11');
  });

  it('the release it already follows is not a release upgrade (exit 2)', () => {
    const e = move(flake('  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";')) as HvError;
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/not a release upgrade.*without --release/);
  });

  it('parses --release and names the command', () => {
    expect(releaseOfArg('nixos-25.05')).toEqual({ year: 25, month: 5 });
    expect(() => releaseOfArg('foo')).toThrow(/YY\.MM or nixos-YY\.MM/);
    expect(releaseCommand('nixos-25.05')).toBe('hv upgrade-test --release 25.05');
  });
});
