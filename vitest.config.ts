import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'adapters/**/*.test.ts', 'src/**/*.test.ts', 'commands/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Real Nix and real sockets: keep parallelism modest on a 2-core machine.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
