/**
 * The ONNX conformance suite through the WebGPU backend (lavapipe in CI): every test the reference backend passes
 * must pass here too, or skip with a stated reason that is about the device.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));
const noGpu = await skipWebgpu();
const dirs = [join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')];

describe.skipIf(noGpu)('conformance (webgpu backend)', () => {
  it('passes every test the reference backend passes', async () => {
    const ref = await runConformance(dirs, { overrides });
    const gpu = await runConformance(dirs, { backend: 'webgpu', overrides });
    console.log(`webgpu: ${gpu.passed} passed, ${gpu.failed} failed, ${gpu.skipped} skipped`);
    const refPassed = new Set(ref.results.filter((r) => r.status === 'pass').map((r) => r.name));
    const bad = gpu.results
      .filter((r) => refPassed.has(r.name) && r.status !== 'pass')
      .filter((r) => !(r.status === 'skip' && /device|limit/i.test(r.reason ?? '')))
      .map(formatResult);
    expect(bad).toEqual([]);
    expect(gpu.failed).toBe(0);
  }, 900_000);
});
