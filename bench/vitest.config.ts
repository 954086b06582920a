import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The benchmark's own tests (report helpers, the ws + JSON baseline, the
// book simulator and the book load clients' window, the trade simulator);
// the benchmark itself never runs under vitest.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['bench/**/*.test.ts', 'load/latency.test.ts', 'load/source-addresses.test.ts', 'load/book-window.test.ts', 'load/trade-sim.test.ts'],
    testTimeout: 15_000,
    hookTimeout: 15_000,
    pool: 'forks',
  },
});
