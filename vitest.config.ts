import { configDefaults, defineConfig } from 'vitest/config';

// Tests that need a real NVIDIA GPU live in test/gpu: out of the default run (CI has no GPU, and a run must not count
// them as skipped), run by `npm run test:gpu` (KILN_GPU_TESTS=1), which bench/gpu.sh uses.
const gpu = process.env['KILN_GPU_TESTS'] === '1';

export default defineConfig({
  test: {
    include: gpu ? ['test/gpu/**/*.test.ts'] : ['test/**/*.test.ts'],
    exclude: gpu ? configDefaults.exclude : [...configDefaults.exclude, 'test/gpu/**'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
