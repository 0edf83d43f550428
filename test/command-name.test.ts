import { afterEach, describe, expect, it } from 'vitest';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

describe('the main command has the name the host gave it (HV_COMMAND_NAME)', () => {
  it('notices, results and refusals name `hvu …` when the module installed hv as hvu', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const env = { HV_COMMAND_NAME: 'hvu' };
    w.upstream.advance('nixos-24.05');
    const c = w.hv(['check-updates'], { env });
    expect(c.code).toBe(100);
    expect(c.stdout).toMatch(/Next: hvu upgrade-test/);
    expect(w.read(w.paths.motd)).toMatch(/hvu upgrade-test/);
    expect(w.read(w.paths.updateText)).toMatch(/hvu system-upgrade/);
    expect(w.read(w.paths.motd)).not.toMatch(/\bhv upgrade-test/);
    const refused = w.hv(['system-upgrade', '--yes'], { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/run "hvu upgrade-test" first/);
    expect(w.hv(['help'], { env }).stdout).toMatch(/hvu rollback \[--to N\]/);
    // Without the variable (outside the module): `hv`.
    expect(w.hv(['help']).stdout).toMatch(/^\s*hv rollback/m);
  });
});
